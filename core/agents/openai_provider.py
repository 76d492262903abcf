"""Provider `openai`: any OpenAI-compatible chat-completions endpoint, through the official `openai` SDK.

- The API key is read from the environment variable the character names (`model.apiKeyEnv`), when the
  agent runs; it is never stored nor logged. One SDK client per (base URL, key) per process, made on
  first use. The SDK's own retries are off: the worker's retry loop is the one place for retries, and
  SDK errors are mapped to `AgentFailure(transient=...)` for it (429, 5xx, timeouts, broken connections
  are transient; 400, 401, 403, 404, 422 are not, and fail at once with the provider's reason).
- Tokens are streamed as chunks as they arrive. A reply that opens with `{` (or a ```json fence) is held
  back instead, and if it parses as a JSON object with a string `text`, that text is the reply and its
  `thought`, `actions` and `confidence` are used (set `structuredReplies: true` to ask the model for it).
  Servers that send the model's reasoning separately (`reasoning_content` / `reasoning` deltas, e.g.
  vLLM's reasoning parsers, DeepSeek) have it taken as the thought.
- Confidence: the model's own `confidence` from a structured reply (clamped to 0..1); otherwise 0.7
  when the model finished normally (`finish_reason` "stop"), 0.4 when it was cut at `maxTokens`,
  0.5 for anything else.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
from pydantic import ValidationError

from core.agents.base import AgentContext, AgentFailure, AgentOutput, AgentReply
from core.agents.character import AgentSettings, ModelSettings, describe, parse_settings
from core.agents.model_access import model_key
from core.agents.prompt import build_prompt

CONFIDENCE_BY_FINISH = {"stop": 0.7, "length": 0.4}
DEFAULT_CONFIDENCE = 0.5
MAX_REASON_CHARS = 300
log = logging.getLogger(__name__)
FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
STATUS_MEANING = {400: "bad request (for example a context too long for the model)", 401: "the API key was refused",
                  403: "access denied", 404: "unknown model or endpoint", 408: "request timeout",
                  409: "conflict", 422: "request not understood", 429: "rate limited or out of quota"}

_clients: dict[tuple[str | None, str], openai.OpenAI] = {}
_clients_lock = threading.Lock()
os.register_at_fork(after_in_child=_clients.clear)  # a forked worker child must not share the parent's sockets


def client_for(base_url: str | None, api_key: str) -> openai.OpenAI:
    """One client (and so one connection pool) per endpoint and key, made on first use."""
    with _clients_lock:
        client = _clients.get((base_url, api_key))
        if client is None:
            client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
            _clients[(base_url, api_key)] = client
        return client


def api_key_for(model: ModelSettings) -> str:
    # Only a variable the operator designated, and only for an allowed host (core/agents/model_access.py).
    return model_key(model)


def _provider_message(error: openai.APIStatusError) -> str:
    body = error.body
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.message)[:MAX_REASON_CHARS]


def failure_from(error: openai.OpenAIError, model: ModelSettings) -> AgentFailure:
    """The worker's view of an SDK error: a stable code and plain words for the user (stored with the message,
    shown in the 502 and the events), and whether a retry may help. Where the model server is and what it
    said (it may name internal hosts, or echo the prompt) go to the worker's log only."""
    where = model.base_url or "the OpenAI API"
    if isinstance(error, openai.APITimeoutError):
        failure = AgentFailure(f"the model server did not answer within {model.request_timeout_seconds:g} s",
                               transient=True, code="MODEL_TIMEOUT")
        detail = f"{where} did not answer within {model.request_timeout_seconds:g} s"
    elif isinstance(error, openai.APIConnectionError):
        cause = error.__cause__ or error
        failure = AgentFailure("could not reach the model server", transient=True, code="MODEL_UNREACHABLE")
        detail = f"could not reach {where}: {type(cause).__name__}: {cause}"
    elif isinstance(error, openai.APIStatusError):
        status = error.status_code
        transient = status in (408, 409, 429) or status >= 500
        meaning = STATUS_MEANING.get(status, "server error" if status >= 500 else "error")
        code = ("MODEL_AUTH_FAILED" if status in (401, 403) else "MODEL_RATE_LIMITED" if status == 429
                else "MODEL_SERVER_ERROR" if status >= 500 else "MODEL_REQUEST_REJECTED")
        failure = AgentFailure(f"the model server answered {status} ({meaning})", transient=transient, code=code)
        detail = f"{where} answered {status}: {_provider_message(error)}"
    elif isinstance(error, openai.APIError):  # an error event inside a stream
        failure = AgentFailure("the model server reported an error while answering", transient=True,
                               code="MODEL_STREAM_ERROR")
        detail = f"{where} reported an error in its stream: {error.message}"
    else:
        failure = AgentFailure("the model call failed", code="MODEL_CALL_FAILED")
        detail = f"the call to {where} failed: {type(error).__name__}: {error}"
    log.warning("model call failed: %s", detail[:MAX_REASON_CHARS * 4],
                extra={"code": failure.code, "transient": failure.transient, "model": model.name})
    return failure


@dataclass
class Generation:
    """What came back, accumulated over the stream."""

    text_parts: list[str] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    streamed: bool = False  # some text was already yielded as chunks

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


def looks_structured(opening: str) -> bool:
    return opening.startswith(("{", "```"))


def parse_structured(text: str) -> dict[str, Any] | None:
    """The JSON object of a structured reply, if `text` is one with a string `text` field."""
    candidate = text.strip()
    fenced = FENCE.match(candidate)
    if fenced:
        candidate = fenced.group(1)
    try:
        parsed = json.loads(candidate)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("text"), str) or not parsed["text"].strip():
        return None
    return parsed


def reply_from(generation: Generation, structured: dict[str, Any] | None) -> AgentReply:
    confidence = CONFIDENCE_BY_FINISH.get(generation.finish_reason or "", DEFAULT_CONFIDENCE)
    thought = "".join(generation.reasoning_parts).strip()
    actions: tuple[str, ...] = ("REPLY",)
    text = generation.text.strip()
    if structured is not None:
        text = structured["text"].strip()
        if isinstance(structured.get("thought"), str) and structured["thought"].strip():
            thought = structured["thought"].strip()
        if isinstance(structured.get("actions"), list):
            actions = tuple(str(a) for a in structured["actions"] if isinstance(a, str | int | float)) or actions
        if isinstance(structured.get("confidence"), int | float) and not isinstance(structured["confidence"], bool):
            confidence = min(1.0, max(0.0, float(structured["confidence"])))
    if not thought:
        thought = f"model reply (finish reason: {generation.finish_reason or 'unknown'})"
    return AgentReply(text=text, thought=thought, actions=actions, confidence=confidence)


def _reasoning_of(delta: Any) -> str:
    extra = getattr(delta, "model_extra", None) or {}
    value = extra.get("reasoning_content") or extra.get("reasoning")
    return value if isinstance(value, str) else ""


class OpenAIAgent:
    def __init__(self, settings: AgentSettings) -> None:
        if settings.model is None:
            raise AgentFailure("the agent has no model settings", code="AGENT_MISCONFIGURED")
        self.settings = settings
        self.model = settings.model

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> OpenAIAgent:
        try:
            return cls(parse_settings(settings))
        except ValidationError as error:
            raise AgentFailure(f"invalid agent settings: {describe(error)}", code="AGENT_MISCONFIGURED") from None

    def run(self, context: AgentContext) -> Iterator[AgentOutput]:
        prompt = build_prompt(context, self.settings)
        client = client_for(self.model.base_url, api_key_for(self.model))
        request: dict[str, Any] = {"model": self.model.name, "messages": prompt.messages,
                                   "max_tokens": self.model.max_tokens, "timeout": self.model.request_timeout_seconds}
        if self.model.temperature is not None:
            request["temperature"] = self.model.temperature
        generation = Generation()
        try:
            if self.model.stream:
                yield from self._stream(client, request, generation)
            else:
                self._complete(client, request, generation)
        except openai.OpenAIError as error:
            raise failure_from(error, self.model) from error
        if generation.finish_reason is None:  # every compatible server ends a complete reply with one
            log.warning("model reply broke off: %s", self.model.base_url or "the OpenAI API")
            raise AgentFailure("the model server's reply broke off before its end", transient=True,
                               code="MODEL_STREAM_ERROR")
        if not generation.text.strip():
            raise AgentFailure(f"the model returned an empty reply (finish reason: {generation.finish_reason})")
        structured = parse_structured(generation.text) if looks_structured(generation.text.lstrip()) else None
        reply = reply_from(generation, structured)
        if not generation.streamed:
            yield reply.text
        yield reply

    @staticmethod
    def _stream(client: openai.OpenAI, request: dict[str, Any], generation: Generation) -> Iterator[str]:
        """Yield text deltas as they come, unless the reply looks like a JSON object (held back for parsing)."""
        with client.chat.completions.create(stream=True, **request) as stream:
            for chunk in stream:
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                generation.finish_reason = choice.finish_reason or generation.finish_reason
                if reasoning := _reasoning_of(choice.delta):
                    generation.reasoning_parts.append(reasoning)
                if not choice.delta.content:
                    continue
                generation.text_parts.append(choice.delta.content)
                if generation.streamed:
                    yield choice.delta.content
                    continue
                opening = generation.text.lstrip()
                if not ("```".startswith(opening) or looks_structured(opening)):  # else: undecided, or held back
                    generation.streamed = True
                    yield generation.text

    @staticmethod
    def _complete(client: openai.OpenAI, request: dict[str, Any], generation: Generation) -> None:
        completion = client.chat.completions.create(**request)
        if completion.choices:
            choice = completion.choices[0]
            generation.text_parts.append(choice.message.content or "")
            generation.finish_reason = choice.finish_reason
            if reasoning := _reasoning_of(choice.message):
                generation.reasoning_parts.append(reasoning)
