"""Provider `openai`: any OpenAI-compatible chat-completions endpoint, through the official `openai` SDK.

- The API key is read from the environment variable the character names (`model.apiKeyEnv`), when the
  agent runs; it is never stored nor logged. One SDK client per (base URL, key) per process, made on
  first use. The SDK's own retries are off: the worker's retry loop is the one place for retries, and
  SDK errors are mapped to `AgentFailure(transient=...)` for it (429, 5xx, timeouts, broken connections
  are transient; 400, 401, 403, 404, 422 are not, and fail at once with the provider's reason).
- Async: one `AsyncOpenAI` client per (event loop, base URL, key), so hundreds of generations share a worker
  process's loop and connection pool, over aiohttp (the SDK's `aiohttp` extra). Streamed chunks are read as raw server-sent events and parsed with
  orjson: the SDK's typed chunk objects cost a pydantic model per token (a quarter of the worker's CPU).
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
import os
import re
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx2
import openai
import orjson
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

# Per event loop: a client's connections belong to the loop that opened them.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str | None, str], openai.AsyncOpenAI]] = \
    weakref.WeakKeyDictionary()


def client_for(base_url: str | None, api_key: str) -> openai.AsyncOpenAI:
    """One client (and so one connection pool) per loop, endpoint and key, made on first use."""
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    client = clients.get((base_url, api_key))
    if client is None:
        # aiohttp's C-parsed HTTP under the SDK: half the CPU per streamed token of the default transport (measured).
        client = clients[(base_url, api_key)] = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                                                                   http_client=openai.DefaultAioHttpClient())
    return client


def api_key_for(model: ModelSettings) -> str:
    # Only a variable the operator designated, and only for an allowed host (core/agents/model_access.py).
    return model_key(model)


def _provider_message(error: openai.APIStatusError) -> str:
    body = error.body
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.message)[:MAX_REASON_CHARS]


def _refused_or_dropped(error: BaseException) -> BaseException | None:
    """The refused or dropped connection a "timeout" really was (the aiohttp transport reports every connection
    error as a connect timeout), if it was one."""
    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, aiohttp.ServerTimeoutError):
            return cause
        cause = cause.__cause__
    return None


def failure_from(error: openai.OpenAIError, model: ModelSettings) -> AgentFailure:
    """The worker's view of an SDK error: a stable code and plain words for the user (stored with the message,
    shown in the 502 and the events), and whether a retry may help. Where the model server is and what it
    said (it may name internal hosts, or echo the prompt) go to the worker's log only."""
    where = model.base_url or "the OpenAI API"
    if isinstance(error, openai.APITimeoutError) and (connection_error := _refused_or_dropped(error)):
        error = openai.APIConnectionError(request=error.request)
        error.__cause__ = connection_error
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
        client = client_for(self.model.base_url, api_key_for(self.model))
        request: dict[str, Any] = {"model": self.model.name, "messages": prompt.messages,
                                   "max_tokens": self.model.max_tokens, "timeout": self.model.request_timeout_seconds}
        if self.model.temperature is not None:
            request["temperature"] = self.model.temperature
        generation = Generation()
        try:
            if self.model.stream:
                async for text in self._stream(client, request, generation):
                    yield text
            else:
                await self._complete(client, request, generation)
        except openai.OpenAIError as error:
            raise failure_from(error, self.model) from error
        except httpx2.TransportError as error:  # while reading the raw stream (the SDK wraps only the request)
            wrapped = openai.APITimeoutError(request=error.request) if isinstance(error, httpx2.TimeoutException) \
                else openai.APIConnectionError(request=error.request)
            wrapped.__cause__ = error
            raise failure_from(wrapped, self.model) from error
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
    async def _stream(client: openai.AsyncOpenAI, request: dict[str, Any],
                      generation: Generation) -> AsyncIterator[str]:
        """Yield text deltas as they come, unless the reply looks like a JSON object (held back for parsing)."""
        async with client.chat.completions.with_streaming_response.create(stream=True, **request) as response:
            async for data in sse_data(response.iter_bytes()):
                if data == b"[DONE]":
                    break
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise AgentFailure("the model server sent a malformed stream chunk", transient=True,
                                       code="MODEL_STREAM_ERROR") from None
                if not isinstance(chunk, dict):
                    continue
                if chunk.get("error"):  # an error event inside the stream: failure_from words it for users
                    raise openai.APIError(_error_text(chunk["error"]), response.http_response.request,
                                          body=chunk["error"])
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
    async def _complete(client: openai.AsyncOpenAI, request: dict[str, Any], generation: Generation) -> None:
        completion = await client.chat.completions.create(**request)
        if completion.choices:
            choice = completion.choices[0]
            generation.text_parts.append(choice.message.content or "")
            generation.finish_reason = choice.finish_reason
            if reasoning := _reasoning_of(choice.message.model_extra or {}):
                generation.reasoning_parts.append(reasoning)


async def sse_data(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The `data:` payloads of a server-sent event stream, as bytes (one per line: OpenAI-compatible servers
    send one JSON document per event)."""
    pending = b""
    async for block in body:
        pending += block
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()
    if pending.startswith(b"data:"):
        yield pending[5:].strip()


def _error_text(error: Any) -> str:
    return str(error.get("message") or error) if isinstance(error, dict) else str(error)
