"""Character files: validation with clear errors, JSON and YAML, the built-in agent, merge patches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.agents.character import (
    Character,
    CharacterFileError,
    builtin_character,
    describe,
    load_character_dir,
    load_character_file,
    merge_patch,
)

YAML_CHARACTER = """\
name: Ada
provider: openai
settings:
  system: You are a patient tutor.
  bio: Teaches mathematics.
  examples:
    - - {role: user, content: "What is 2+2?"}
      - {role: agent, content: "Four."}
  model:
    name: llama3.1:8b
    baseUrl: http://127.0.0.1:11434/v1
    apiKeyEnv: null
    temperature: 0.3
  timeoutConfig: {timeoutMinutes: 60}
"""


def problem(document: dict) -> str:
    with pytest.raises(ValidationError) as caught:
        Character.model_validate(document)
    return describe(caught.value)


def test_builtin_eliza_is_a_character_using_the_doctor_script() -> None:
    eliza = builtin_character("eliza")

    assert (eliza.name, eliza.provider, eliza.settings.script) == ("Eliza", "eliza", "doctor")


def test_yaml_file_loads_with_defaults_and_stores_only_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "ada.yaml"
    path.write_text(YAML_CHARACTER)

    ada = load_character_file(path)

    assert ada.settings.bio == ["Teaches mathematics."] and ada.settings.model is not None
    assert ada.settings.model.max_tokens == 512 and ada.settings.model.api_key_env is None
    assert ada.stored_settings()["model"] == {"name": "llama3.1:8b", "baseUrl": "http://127.0.0.1:11434/v1",
                                              "apiKeyEnv": None, "temperature": 0.3}


@pytest.mark.parametrize(("document", "expected"), [
    ({"name": "X", "provider": "openai"}, "provider 'openai' needs settings.model"),
    ({"name": "X", "provider": "openai", "settings": {"model": {"name": "m", "temperature": 3}}},
     "settings.model.temperature: Input should be less than or equal to 2"),
    ({"name": "X", "settings": {"temprature": 1}}, "settings.temprature: Extra inputs are not permitted"),
    ({"name": "X", "settings": {"script": "nope"}}, "settings.script: Input should be 'doctor'"),
    ({"name": "X", "provider": "gpt"}, "provider: Input should be 'eliza', 'echo' or 'openai'"),
    ({"name": " "}, "name: String should match pattern '\\S'"),
    ({"name": "X", "settings": {"bio": ["a\x00b"]}}, "text must not contain NUL"),
    ({"name": "X", "settings": {"timeoutConfig": {"timeoutMinutes": 10, "warningThresholdMinutes": 10}}},
     "warningThresholdMinutes must be less than timeoutMinutes"),
])
def test_invalid_characters_say_what_and_where(document: dict, expected: str) -> None:
    assert expected in problem(document)


def test_a_bad_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "Bad", "provider": "openai", "settings": {"model": {}}}))

    with pytest.raises(CharacterFileError, match=r"bad\.json: settings\.model\.name: Field required"):
        load_character_file(path)


def test_two_files_may_not_define_the_same_agent(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"name": "Same"}')
    (tmp_path / "b.yml").write_text("name: Same\n")

    with pytest.raises(CharacterFileError, match="already used by"):
        load_character_dir(tmp_path)


def test_merge_patch_merges_objects_and_null_removes() -> None:
    current = {"system": "old", "model": {"name": "m", "temperature": 0.5}, "bio": ["a"]}

    merged = merge_patch(current, {"system": None, "model": {"temperature": 0.9}, "bio": ["b"]})

    assert merged == {"model": {"name": "m", "temperature": 0.9}, "bio": ["b"]}
