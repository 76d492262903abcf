"""`SessionsClient` (sync) and `AsyncSessionsClient` (asyncio): the HTTP API from Python, over httpx.

Both share one definition of every plain call (`_Calls`): each method builds a `Call` that the sync client
runs at once and the async client returns as a coroutine. Streams are implemented once per flavour.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from httpx_sse import EventSource, ServerSentEvent

from agent_sessions_client.errors import ReplyPending, error_for, raise_for_error
from agent_sessions_client.events import ErrorEvent, Event, events_of_reply, events_of_reply_event, parse_event
from agent_sessions_client.schemas import (
    AcceptedPublic,
    AgentPublic,
    AgentSummary,
    Health,
    MessagePage,
    MessagePublic,
    ReplyPublic,
    Schema,
    SessionPage,
    SessionPublic,
)

SESSIONS = "/api/messaging/sessions"
DEFAULT_URL = "http://localhost:3000"
# Network failures after which `events()` reconnects (with Last-Event-ID) instead of giving up.
RECONNECTABLE = (httpx.TransportError, httpx.RemoteProtocolError)


T = TypeVar("T")
S = TypeVar("S", bound=Schema)


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _model(kind: type[S]) -> Callable[[httpx.Response], S]:
    return lambda response: kind.from_json(response.json())


def _json_object(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    return body


def _reply_or_accepted(response: httpx.Response) -> ReplyPublic | AcceptedPublic:
    body = response.json()
    return AcceptedPublic.from_json(body) if response.status_code == 202 else ReplyPublic.from_json(body)


def _idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key else {}


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _session(session_id: str | uuid.UUID, suffix: str = "") -> str:
    return f"{SESSIONS}/{session_id}{suffix}"


def _auth_headers(api_key: str | None, token: str | None) -> dict[str, str]:
    headers = {}
    if api_key:
        headers["X-API-KEY"] = api_key
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _is_event_stream(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("text/event-stream")


def _event_of(sse: ServerSentEvent) -> Event | None:
    if sse.event == "message" and not sse.data:
        return None  # a blank keep-alive, not an event
    return parse_event(sse.event, sse.data, sse.id)


def _reply_events_of(sse: ServerSentEvent) -> list[Event]:
    if sse.event == "message" and not sse.data:
        return []  # a blank keep-alive, not an event
    return events_of_reply_event(sse.event, sse.data, sse.id)


def _raise_if_error(event: Event) -> None:
    if isinstance(event, ErrorEvent):
        raise error_for(502, {"error": event.data})


class _Calls:
    """Every request/response call of the API, shared by the sync and async clients."""

    def _run(self, call: Call[T]) -> T:
        raise NotImplementedError

    def health(self) -> Health:
        return self._run(Call("GET", f"{SESSIONS}/health", _model(Health)))

    def list_agents(self) -> list[AgentSummary]:
        return self._run(Call("GET", "/api/agents", lambda r: [AgentSummary.from_json(a)
                                                               for a in r.json()["agents"]]))

    def create_agent(self, name: str, provider: str = "eliza", settings: dict[str, Any] | None = None) -> AgentPublic:
        return self._run(Call("POST", "/api/agents", _model(AgentPublic),
                              json={"name": name, "provider": provider, "settings": settings or {}}))

    def create_session(self, agent_id: str | uuid.UUID, user_id: str, *, metadata: dict[str, Any] | None = None,
                       timeout_config: dict[str, Any] | None = None,
                       idempotency_key: str | None = None) -> SessionPublic:
        body = _drop_none({"agentId": str(agent_id), "userId": user_id, "metadata": metadata,
                           "timeoutConfig": timeout_config})
        return self._run(Call("POST", SESSIONS, _model(SessionPublic), json=body,
                              headers=_idempotency(idempotency_key)))

    def get_session(self, session_id: str | uuid.UUID) -> SessionPublic:
        return self._run(Call("GET", _session(session_id), _model(SessionPublic)))

    def list_sessions(self, *, user_id: str | None = None, agent_id: str | uuid.UUID | None = None,
                      status: str | None = None, limit: int = 50, cursor: str | None = None) -> SessionPage:
        params = _drop_none({"userId": user_id, "agentId": str(agent_id) if agent_id else None, "status": status,
                             "limit": limit, "cursor": cursor})
        return self._run(Call("GET", SESSIONS, _model(SessionPage), params=params))

    def send(self, session_id: str | uuid.UUID, content: str, *, metadata: dict[str, Any] | None = None,
             idempotency_key: str | None = None) -> ReplyPublic | AcceptedPublic:
        """Send and wait for the reply (`ReplyPublic`); `AcceptedPublic` if the server's wait limit passed."""
        return self._run(Call("POST", _session(session_id, "/messages"), _reply_or_accepted,
                              json=_drop_none({"content": content, "metadata": metadata}),
                              headers=_idempotency(idempotency_key)))

    def history_page(self, session_id: str | uuid.UUID, *, limit: int = 50, before: str | float | None = None,
                     after: str | float | None = None) -> MessagePage:
        params = _drop_none({"limit": limit, "before": before, "after": after})
        return self._run(Call("GET", _session(session_id, "/messages"), _model(MessagePage), params=params))

    def pause(self, session_id: str | uuid.UUID) -> SessionPublic:
        return self._run(Call("POST", _session(session_id, "/pause"), _model(SessionPublic)))

    def resume(self, session_id: str | uuid.UUID) -> SessionPublic:
        return self._run(Call("POST", _session(session_id, "/resume"), _model(SessionPublic)))

    def renew(self, session_id: str | uuid.UUID) -> SessionPublic:
        return self._run(Call("POST", _session(session_id, "/renew"), _model(SessionPublic)))

    def heartbeat(self, session_id: str | uuid.UUID) -> SessionPublic:
        return self._run(Call("POST", _session(session_id, "/heartbeat"), _model(SessionPublic)))

    def update_timeout(self, session_id: str | uuid.UUID, *, timeout_minutes: int | None = None,
                       auto_renew: bool | None = None, max_duration_minutes: int | None = None,
                       warning_threshold_minutes: int | None = None) -> SessionPublic:
        body = _drop_none({"timeoutMinutes": timeout_minutes, "autoRenew": auto_renew,
                           "maxDurationMinutes": max_duration_minutes,
                           "warningThresholdMinutes": warning_threshold_minutes})
        return self._run(Call("PATCH", _session(session_id, "/timeout"), _model(SessionPublic), json=body))

    def end(self, session_id: str | uuid.UUID, *, purge: bool = False) -> dict[str, Any]:
        """End the session (history stays readable), or erase it with `purge=True`."""
        return self._run(Call("DELETE", _session(session_id), _json_object,
                              params={"purge": "true"} if purge else None))


class SessionsClient(_Calls):
    """Synchronous client. `api_key` is sent as X-API-KEY, `token` as a bearer token; `transport` is handed to
    httpx (e.g. `httpx.HTTPTransport(retries=3)`)."""

    def __init__(self, base_url: str = DEFAULT_URL, *, api_key: str | None = None, token: str | None = None,
                 timeout: float = 60.0, reconnect_delay: float = 1.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=_auth_headers(api_key, token),
                                  transport=transport)
        self._reconnect_delay = reconnect_delay

    def __enter__(self) -> SessionsClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _run(self, call: Call[T]) -> T:
        response = self._http.request(call.method, call.path, json=call.json, params=call.params,
                                      headers=call.headers)
        raise_for_error(response)
        return call.parse(response)

    def history(self, session_id: str | uuid.UUID, *, page_size: int = 50,
                before: str | float | None = None) -> Iterator[MessagePublic]:
        """Every message, newest first, fetching pages (by cursor) as the iteration goes."""
        while True:
            page = self.history_page(session_id, limit=page_size, before=before)
            yield from page.messages
            if not page.has_more or not page.cursors.before:
                return
            before = page.cursors.before

    def stream(self, session_id: str | uuid.UUID, content: str, *, metadata: dict[str, Any] | None = None,
               idempotency_key: str | None = None) -> Iterator[Event]:
        """Send and iterate over the reply's events: message.created, message.chunk…, message.completed,
        state.updated, done. An `error` event raises (e.g. AgentFailed). A server without SSE support answers
        the whole reply at once: the same events are yielded, without chunks."""
        body = _drop_none({"content": content, "metadata": metadata, "transport": "sse"})
        headers = {"Accept": "text/event-stream", **_idempotency(idempotency_key)}
        with self._http.stream("POST", _session(session_id, "/messages"), json=body, headers=headers,
                               timeout=httpx.Timeout(self._http.timeout.connect, read=None)) as response:
            if not _is_event_stream(response):
                response.read()
                raise_for_error(response)
                if response.status_code == 202:
                    raise ReplyPending(AcceptedPublic.from_json(response.json()))
                yield from events_of_reply(response.json())
                return
            for sse in EventSource(response).iter_sse():
                for event in _reply_events_of(sse):
                    _raise_if_error(event)
                    yield event
                    if event.type == "done":
                        return

    def events(self, session_id: str | uuid.UUID, *, last_event_id: str | None = None,
               max_reconnects: int | None = None) -> Iterator[Event]:
        """Every event of the session as it happens, for as long as you iterate. After a dropped connection it
        reconnects with Last-Event-ID, so no durable event is missed or repeated."""
        reconnects = 0
        while True:
            headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_event_id} if last_event_id else {})}
            try:
                with self._http.stream("GET", _session(session_id, "/events"), headers=headers,
                                       timeout=httpx.Timeout(self._http.timeout.connect, read=None)) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise_for_error(response)
                    for sse in EventSource(response).iter_sse():
                        last_event_id = sse.id or last_event_id
                        event = _event_of(sse)
                        if event is not None:
                            reconnects = 0
                            yield event
            except RECONNECTABLE:
                pass
            reconnects += 1
            if max_reconnects is not None and reconnects > max_reconnects:
                return
            time.sleep(self._reconnect_delay)


class AsyncSessionsClient(_Calls):
    """The same API for asyncio: `await client.send(...)`, `async for event in client.stream(...)`."""

    def __init__(self, base_url: str = DEFAULT_URL, *, api_key: str | None = None, token: str | None = None,
                 timeout: float = 60.0, reconnect_delay: float = 1.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=_auth_headers(api_key, token),
                                       transport=transport)
        self._reconnect_delay = reconnect_delay

    async def __aenter__(self) -> AsyncSessionsClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # Each shared call returns an awaitable of what the sync client returns: no override mypy can express.
    async def _run(self, call: Call[T]) -> T:  # type: ignore[override]  # see above
        response = await self._http.request(call.method, call.path, json=call.json, params=call.params,
                                            headers=call.headers)
        raise_for_error(response)
        return call.parse(response)

    async def history(self, session_id: str | uuid.UUID, *, page_size: int = 50,
                      before: str | float | None = None) -> AsyncIterator[MessagePublic]:
        while True:
            page = await self.history_page(session_id, limit=page_size, before=before)  # type: ignore[misc]  # awaitable (_run)
            for message in page.messages:
                yield message
            if not page.has_more or not page.cursors.before:
                return
            before = page.cursors.before

    async def stream(self, session_id: str | uuid.UUID, content: str, *, metadata: dict[str, Any] | None = None,
                     idempotency_key: str | None = None) -> AsyncIterator[Event]:
        body = _drop_none({"content": content, "metadata": metadata, "transport": "sse"})
        headers = {"Accept": "text/event-stream", **_idempotency(idempotency_key)}
        async with self._http.stream("POST", _session(session_id, "/messages"), json=body, headers=headers,
                                     timeout=httpx.Timeout(self._http.timeout.connect, read=None)) as response:
            if not _is_event_stream(response):
                await response.aread()
                raise_for_error(response)
                if response.status_code == 202:
                    raise ReplyPending(AcceptedPublic.from_json(response.json()))
                for event in events_of_reply(response.json()):
                    yield event
                return
            async for sse in EventSource(response).aiter_sse():
                for event in _reply_events_of(sse):
                    _raise_if_error(event)
                    yield event
                    if event.type == "done":
                        return

    async def events(self, session_id: str | uuid.UUID, *, last_event_id: str | None = None,
                     max_reconnects: int | None = None) -> AsyncIterator[Event]:
        reconnects = 0
        while True:
            headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_event_id} if last_event_id else {})}
            try:
                async with self._http.stream("GET", _session(session_id, "/events"), headers=headers,
                                             timeout=httpx.Timeout(self._http.timeout.connect, read=None)) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise_for_error(response)
                    async for sse in EventSource(response).aiter_sse():
                        last_event_id = sse.id or last_event_id
                        event = _event_of(sse)
                        if event is not None:
                            reconnects = 0
                            yield event
            except RECONNECTABLE:
                pass
            reconnects += 1
            if max_reconnects is not None and reconnects > max_reconnects:
                return
            await asyncio.sleep(self._reconnect_delay)
