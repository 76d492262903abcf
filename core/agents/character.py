"""Character files: what defines an agent (persona, prompt, model settings, session timeout defaults).

A character document is exactly the body of `POST /api/agents`: `{name, provider, settings}`. It can live
in a JSON or YAML file under `AGENTS_DIR` (loaded by `agent-sessions migrate`) or be sent over the API.
The built-in "Eliza" agent is such a file, shipped in `characters/eliza.json`.

Settings are stored as given (camelCase, unset fields left out) and parsed again with `AgentSettings`
where they are used, so the defaults below apply to every agent whenever it runs.
"""

from __future__ import annotations

import json
from copy import copy
from functools import cache
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from core.agents.base import MAX_CHUNK_DELAY_MS
from core.schemas import Provider, Schema, TimeoutConfigUpdate
from core.sessions.status import Role

CHARACTER_SUFFIXES = (".json", ".yaml", ".yml")
BUILTIN_DIR = "characters"
# The eliza scripts bundled in `core/agents/scripts/`, so the schema lists them (a Literal built at import,
# which a type checker cannot read: it sees the string it is).
if TYPE_CHECKING:
    ElizaScript = str
else:
    ElizaScript = Literal[tuple(sorted(
        path.name.removesuffix(".json") for path in (resources.files("core.agents") / "scripts").iterdir()
        if path.name.endswith(".json")))]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class StrictSchema(Schema):
    # A typo in a character file ("temprature") must be an error, not a silently ignored key.
    model_config = ConfigDict(**{**Schema.model_config, "extra": "forbid"})


class Document(StrictSchema):
    """A whole document as sent or read: no NUL characters anywhere (PostgreSQL text and JSON refuse them)."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _has_nul(value):
            raise ValueError("text must not contain NUL (\\u0000) characters")
        return value


class ExampleMessage(StrictSchema):
    role: Literal[Role.USER, Role.AGENT]
    content: str = Field(min_length=1, max_length=4000)


class CircuitBreakerSettings(StrictSchema):
    """After `failureThreshold` consecutive transient failures, calls fail fast for `cooldownSeconds`."""

    failure_threshold: int = Field(5, ge=1, le=1000)
    cooldown_seconds: float = Field(30.0, gt=0, le=3600)


class ModelSettings(StrictSchema):
    """An OpenAI-compatible chat-completions endpoint and how to call it."""

    name: str = Field(min_length=1, max_length=200, description="model id, e.g. gpt-4o-mini or llama3.1:8b")
    base_url: str | None = Field(None, pattern=r"^https?://\S+$", max_length=500,
                                 description="API root (…/v1); the OpenAI API when absent")
    api_key_env: str | None = Field("OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100,
                                    description="environment variable holding the API key; null: no key needed")
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int = Field(512, ge=1, le=1_000_000, description="longest reply, also reserved in the budget")
    context_tokens: int = Field(4096, ge=256, le=10_000_000, description="prompt + reply token budget")
    request_timeout_seconds: float = Field(60.0, gt=0, le=600)
    stream: bool = True
    structured_replies: bool = Field(False, description="ask the model for a JSON {text, thought, actions} reply")
    circuit_breaker: CircuitBreakerSettings = Field(default_factory=CircuitBreakerSettings)


class AgentSettings(StrictSchema):
    description: str = Field("", max_length=500, description="one line for listings; not sent to the model")
    system: str | None = Field(None, max_length=20_000, description="the system prompt")
    bio: list[str] = Field(default_factory=list, max_length=50)
    style: list[str] = Field(default_factory=list, max_length=50)
    examples: list[list[ExampleMessage]] = Field(default_factory=list, max_length=20,
                                                 description="example exchanges, each a list of messages")
    script: ElizaScript | None = Field(None, description="eliza: bundled script name")
    chunk_delay_ms: int | None = Field(None, ge=0, le=MAX_CHUNK_DELAY_MS,
                                       description="eliza, echo: pause between streamed chunks")
    history_messages: int | None = Field(None, ge=1, le=500,
                                         description="earlier messages loaded for the prompt (HISTORY_WINDOW)")
    model: ModelSettings | None = None
    timeout_config: TimeoutConfigUpdate | None = None

    @field_validator("bio", "style", mode="before")
    @classmethod
    def _one_line_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("bio", "style")
    @classmethod
    def _bounded_lines(cls, lines: list[str]) -> list[str]:
        if any(len(line) > 2000 for line in lines):
            raise ValueError("each line must be at most 2000 characters")
        return lines

    @model_validator(mode="after")
    def _coherent_timeouts(self) -> AgentSettings:
        config = self.timeout_config
        if config is None or config.timeout_minutes is None:
            return self
        warning, maximum = config.warning_threshold_minutes, config.max_duration_minutes
        if warning is not None and warning >= config.timeout_minutes:
            raise ValueError("timeoutConfig.warningThresholdMinutes must be less than timeoutMinutes")
        if maximum is not None and maximum < config.timeout_minutes:
            raise ValueError("timeoutConfig.maxDurationMinutes must be at least timeoutMinutes")
        return self


class Character(Document):
    name: str = Field(min_length=1, max_length=100, pattern=r"\S")
    provider: Provider = "eliza"
    settings: AgentSettings = Field(default_factory=AgentSettings)

    @field_validator("name")
    @classmethod
    def _trimmed_name(cls, name: str) -> str:
        return name.strip()

    @model_validator(mode="after")
    def _provider_needs(self) -> Character:
        if self.provider == "openai" and self.settings.model is None:
            raise ValueError("provider 'openai' needs settings.model (at least its name)")
        return self

    def stored_settings(self) -> dict[str, Any]:
        """The settings as written (camelCase, without fields left unset), for the `agents.settings` column."""
        return self.settings.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _partial_annotation(annotation: Any) -> Any:
    """`X` or `X | None` -> `X | None`, with a strict model X made partial itself."""
    options = [arg for arg in get_args(annotation) if arg is not type(None)] if get_origin(annotation) in (
        Union, UnionType) else [annotation]
    if len(options) == 1 and isinstance(options[0], type) and issubclass(options[0], StrictSchema):
        return partial_model(options[0]) | None
    return annotation | None


@cache
def partial_model(model: type[StrictSchema]) -> type[StrictSchema]:
    """The same fields, constraints and aliases, all optional with no default: the shape of a merge patch."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        optional = copy(info)
        optional.default, optional.default_factory = None, None
        fields[name] = (_partial_annotation(info.annotation), optional)
    return create_model(f"{model.__name__}Patch", __base__=StrictSchema, **fields)


# A model built at import; a type checker sees the model it mirrors.
if TYPE_CHECKING:
    AgentSettingsPatch = AgentSettings
else:
    AgentSettingsPatch = partial_model(AgentSettings)


class AgentPatch(Document):
    """Partial update. `settings` is a JSON merge patch (RFC 7396): objects merge, `null` removes a key, and
    the merged character is validated as a whole."""

    name: str | None = Field(None, min_length=1, max_length=100, pattern=r"\S")
    provider: Provider | None = None
    settings: AgentSettingsPatch | None = None

    def settings_patch(self) -> dict[str, Any] | None:
        if self.settings is None:
            return None
        patch: dict[str, Any] = self.settings.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return patch


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def parse_settings(stored: dict[str, Any]) -> AgentSettings:
    return AgentSettings.model_validate(stored or {})


def describe(error: ValidationError) -> str:
    """'settings.model.temperature: Input should be less than or equal to 2; ...' (first few problems)."""
    parts = []
    for problem in error.errors()[:5]:
        where = ".".join(str(part) for part in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


class CharacterFileError(ValueError):
    pass


def load_character_file(path: Path) -> Character:
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise CharacterFileError(f"{path}: cannot be read as {path.suffix[1:].upper()}: {error}") from error
    try:
        return Character.model_validate(document)
    except ValidationError as error:
        raise CharacterFileError(f"{path}: {describe(error)}") from error


def load_character_dir(directory: Path) -> list[Character]:
    """Every character file in the directory (sorted by file name); two files may not share a name."""
    if not directory.is_dir():
        raise CharacterFileError(f"AGENTS_DIR {directory} is not a directory")
    characters: dict[str, tuple[Path, Character]] = {}
    for path in sorted(p for p in directory.iterdir() if p.suffix in CHARACTER_SUFFIXES and p.is_file()):
        character = load_character_file(path)
        if character.name in characters:
            raise CharacterFileError(f"{path}: the name {character.name!r} is already used by "
                                     f"{characters[character.name][0]}")
        characters[character.name] = (path, character)
    return [character for _, character in characters.values()]


def builtin_character(name: str) -> Character:
    resource = resources.files("core.agents") / BUILTIN_DIR / f"{name}.json"
    return Character.model_validate_json(resource.read_text(encoding="utf-8"))
