"""Provider `openai`: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp).

- Spoken over aiohttp directly: one `POST {baseUrl}/chat/completions` per attempt, the body encoded with orjson,
  the streamed server-sent events read line by line and parsed with orjson. The official SDK costs more CPU
  per call than the rest of a turn (about 3 ms to build a request, measured: its typed transforms of the
  messages) and again per streamed token (its layers over the transport); a worker runs hundreds of these
  at once, so the wire protocol is written here, in this one module.
- One aiohttp session (one connection pool) per event loop and base URL, made on first use. No retries here:
  the worker's retry loop is the one place for them. Failures become `AgentFailure`s with a stable code and
  plain words for users (429, 5xx, timeouts, broken connections are transient; 400, 401, 403, 404, 422 are
  not); where the server is and what it said go to the worker's log only.
- The API key is read from the environment variable the character names (`model.apiKeyEnv`), when the
  agent runs, and only if the operator designated it (core/agents/model_access.py); it is never stored nor
  logged.
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

import asyncio
import json
import logging
import re
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from pydantic import ValidationError

from core.agents.base import AgentContext, AgentFailure, AgentOutput, AgentReply
from core.agents.character import AgentSettings, ModelSettings, describe, parse_settings
from core.agents.model_access import DEFAULT_BASE_URL, model_key
from core.agents.prompt import build_prompt

CONFIDENCE_BY_FINISH = {"stop": 0.7, "length": 0.4}
DEFAULT_CONFIDENCE = 0.5
MAX_REASON_CHARS = 300
log = logging.getLogger(__name__)
FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
STATUS_MEANING = {400: "bad request (for example a context too long for the model)", 401: "the API key was refused",
                  403: "access denied", 404: "unknown model or endpoint", 408: "request timeout",
                  409: "conflict", 422: "request not understood", 429: "rate limited or out of quota"}

MAX_ERROR_BODY_BYTES = 64 * 1024  # of an error answer, read for the log

# Per event loop: a session's connections belong to the loop that opened them.
_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, aiohttp.ClientSession]] = \
    weakref.WeakKeyDictionary()


def session_for(base_url: str) -> aiohttp.ClientSession:
    """One HTTP session (and so one connection pool, unbounded: the runtime caps the turns) per loop and base URL."""
    sessions = _sessions.setdefault(asyncio.get_running_loop(), {})
    session = sessions.get(base_url)
    if session is None or session.closed:
        session = sessions[base_url] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), json_serialize=lambda value: orjson.dumps(value).decode())
    return session


async def close_sessions() -> None:
    """Close this loop's HTTP sessions (when the loop's owner stops)."""
    for session in _sessions.pop(asyncio.get_running_loop(), {}).values():
        await session.close()


def api_key_for(model: ModelSettings) -> str:
    # Only a variable the operator designated, and only for an allowed host (core/agents/model_access.py).
    return model_key(model)


class ModelCallFailed(Exception):
    """A failed model call, as seen on the wire; `failure` words it for users (and logs the detail)."""

    def __init__(self, kind: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.kind = kind  # "timeout" | "unreachable" | "status" | "stream"
        self.detail = detail
        self.status = status


def failure_from(error: ModelCallFailed, model: ModelSettings) -> AgentFailure:
    """The worker's view of a failed call: a stable code and plain words for the user (stored with the message,
    shown in the 502 and the events), and whether a retry may help. Where the model server is and what it
    said (it may name internal hosts, or echo the prompt) go to the worker's log only."""
    where = model.base_url or "the OpenAI API"
    if error.kind == "timeout":
        failure = AgentFailure(f"the model server did not answer within {model.request_timeout_seconds:g} s",
                               transient=True, code="MODEL_TIMEOUT")
    elif error.kind == "unreachable":
        failure = AgentFailure("could not reach the model server", transient=True, code="MODEL_UNREACHABLE")
    elif error.kind == "status" and error.status is not None:
        status = error.status
        transient = status in (408, 409, 429) or status >= 500
        meaning = STATUS_MEANING.get(status, "server error" if status >= 500 else "error")
        code = ("MODEL_AUTH_FAILED" if status in (401, 403) else "MODEL_RATE_LIMITED" if status == 429
                else "MODEL_SERVER_ERROR" if status >= 500 else "MODEL_REQUEST_REJECTED")
        failure = AgentFailure(f"the model server answered {status} ({meaning})", transient=transient, code=code)
    else:
        failure = AgentFailure("the model server reported an error while answering", transient=True,
                               code="MODEL_STREAM_ERROR")
    log.warning("model call failed: %s: %s", where, error.detail[:MAX_REASON_CHARS * 4],
                extra={"code": failure.code, "transient": failure.transient, "model": model.name})
    return failure


def _provider_message(body: bytes) -> str:
    """What an error answer says: OpenAI's `{"error": {"message": ...}}`, a bare `{"message": ...}`, or its text."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace")[:MAX_REASON_CHARS]
    error = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
    return _error_text(error)[:MAX_REASON_CHARS]


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


def _reasoning_of(fields: dict[str, Any]) -> str:
    """The model's reasoning, where the server sends it apart from the reply (vLLM, DeepSeek)."""
    value = fields.get("reasoning_content") or fields.get("reasoning")
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

    async def run(self, context: AgentContext) -> AsyncIterator[AgentOutput]:
        prompt = build_prompt(context, self.settings)
        headers = {"Authorization": f"Bearer {api_key_for(self.model)}"}
        body: dict[str, Any] = {"model": self.model.name, "messages": prompt.messages,
                                "max_tokens": self.model.max_tokens, "stream": self.model.stream}
        if self.model.temperature is not None:
            body["temperature"] = self.model.temperature
        url = f"{(self.model.base_url or DEFAULT_BASE_URL).rstrip('/')}/chat/completions"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.model.request_timeout_seconds,
                                        sock_read=self.model.request_timeout_seconds)
        generation = Generation()
        try:
            async with session_for(url).post(url, json=body, headers=headers, timeout=timeout) as response:
                if response.status >= 400:
                    message = _provider_message(await response.content.read(MAX_ERROR_BODY_BYTES))
                    raise ModelCallFailed("status", f"answered {response.status}: {message}", response.status)
                if self.model.stream:
                    async for text in self._stream(response, generation):
                        yield text
                else:
                    self._complete(await response.read(), generation)
        except ModelCallFailed as error:
            raise failure_from(error, self.model) from error
        except (TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise failure_from(ModelCallFailed("timeout", f"no answer within {self.model.request_timeout_seconds:g} s"),
                               self.model) from error
        except aiohttp.ClientError as error:  # refused, dropped, or a broken HTTP answer
            raise failure_from(ModelCallFailed("unreachable", f"{type(error).__name__}: {error}"), self.model) \
                from error
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
    async def _stream(response: aiohttp.ClientResponse, generation: Generation) -> AsyncIterator[str]:
        """Yield text deltas as they come, unless the reply looks like a JSON object (held back for parsing)."""
        async for line in response.content:  # one server-sent event line at a time
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise ModelCallFailed("stream", "sent a malformed stream chunk") from None
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):  # an error event inside the stream
                raise ModelCallFailed("stream", f"reported an error in its stream: {_error_text(chunk['error'])}")
            choices = chunk.get("choices")
            if not choices:
                continue
            choice = choices[0]
            generation.finish_reason = choice.get("finish_reason") or generation.finish_reason
            delta = choice.get("delta") or {}
            if reasoning := _reasoning_of(delta):
                generation.reasoning_parts.append(reasoning)
            content = delta.get("content")
            if not content:
                continue
            generation.text_parts.append(content)
            if generation.streamed:
                yield content
                continue
            opening = generation.text.lstrip()
            if not ("```".startswith(opening) or looks_structured(opening)):  # else: undecided, or held back
                generation.streamed = True
                yield generation.text

    @staticmethod
    def _complete(body: bytes, generation: Generation) -> None:
        try:
            completion = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ModelCallFailed("stream", "sent a completion that is not JSON") from None
        choices = completion.get("choices") if isinstance(completion, dict) else None
        if choices:
            choice = choices[0]
            message = choice.get("message") or {}
            generation.text_parts.append(message.get("content") or "")
            generation.finish_reason = choice.get("finish_reason")
            if reasoning := _reasoning_of(message):
                generation.reasoning_parts.append(reasoning)


def _error_text(error: Any) -> str:
    return str(error.get("message") or error) if isinstance(error, dict) else str(error)
