"""Typed session events, from an SSE reply or the `/events` stream.

On `/events` each event is an envelope `{id, type, sessionId, data, createdAt}`; `parse_event` picks its class
by type. The SSE reply of a send speaks ElizaOS's vocabulary (`user_message`, `chunk`, `done`, `error`);
`events_of_reply_event` turns each of its events into the same typed events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agent_sessions_client.schemas import MessagePublic, SessionStatus


@dataclass(frozen=True)
class Event:
    """Any session event; the subclasses below add typed accessors for the common ones."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # durable events only: resume from it with Last-Event-ID
    session_id: str | None = None
    created_at: str | None = None


class MessageCreated(Event):
    @property
    def message(self) -> MessagePublic:
        return MessagePublic.from_json(self.data["message"])


class MessageChunk(Event):
    @property
    def delta(self) -> str:
        delta: str = self.data.get("delta", "")
        return delta

    @property
    def index(self) -> int:
        return int(self.data.get("index", 0))

    @property
    def message_id(self) -> str | None:
        return self.data.get("messageId")

    @property
    def reply_to(self) -> str | None:
        return self.data.get("replyTo")


class MessageCompleted(Event):
    @property
    def message(self) -> MessagePublic:
        return MessagePublic.from_json(self.data["message"])

    @property
    def reply_to(self) -> str | None:
        return self.data.get("replyTo")

    @property
    def session_status(self) -> SessionStatus | None:
        status = self.data.get("sessionStatus")
        return SessionStatus.from_json(status) if status else None


class MessageFailed(Event):
    @property
    def message_id(self) -> str | None:
        return self.data.get("messageId")

    @property
    def error(self) -> dict[str, Any]:
        return self.data.get("error") or {}


class StateUpdated(Event):
    @property
    def state(self) -> dict[str, Any]:
        return self.data.get("state") or {}

    @property
    def message_id(self) -> str | None:
        return self.data.get("messageId")


class Done(Event):
    """The end of an SSE reply."""


class ErrorEvent(Event):
    """An SSE reply ended in an error (`data: {code, message}`); `stream()` raises it as an ApiError."""


EVENT_TYPES: dict[str, type[Event]] = {
    "message.created": MessageCreated, "message.chunk": MessageChunk, "message.completed": MessageCompleted,
    "message.failed": MessageFailed, "state.updated": StateUpdated, "done": Done, "error": ErrorEvent,
}


def parse_event(event_type: str, raw_data: str, event_id: str | None = None) -> Event:
    """One SSE event: its data is an envelope, or (for bare events) the payload itself."""
    try:
        payload = json.loads(raw_data) if raw_data else {}
    except json.JSONDecodeError:
        payload = {"text": raw_data}
    is_envelope = isinstance(payload, dict) and "type" in payload and "data" in payload
    kind = event_type or (payload.get("type") if is_envelope else "") or "message"
    data = payload["data"] if is_envelope else payload
    return EVENT_TYPES.get(kind, Event)(
        type=kind, data=data if isinstance(data, dict) else {"value": data},
        id=(payload.get("id") if is_envelope else None) or event_id or None,
        session_id=payload.get("sessionId") if is_envelope else None,
        created_at=payload.get("createdAt") if is_envelope else None,
    )


def events_of_reply_event(event_type: str, raw_data: str, event_id: str | None = None) -> list[Event]:
    """The typed events one event of an SSE reply stands for."""
    data = json.loads(raw_data) if raw_data else {}
    if event_type == "user_message":
        return [MessageCreated(type="message.created", data={"message": data}, id=event_id)]
    if event_type == "chunk":
        return [MessageChunk(type="message.chunk", data={"messageId": data.get("messageId"), "replyTo": data.get(
            "replyTo"), "index": data.get("index", 0), "delta": data.get("chunk", "")})]
    if event_type == "done":
        status = data.get("sessionStatus") or {}
        return [MessageCompleted(type="message.completed", id=event_id, data={
                    "message": data["message"], "replyTo": data.get("replyTo"), "sessionStatus": status or None}),
                StateUpdated(type="state.updated", data={"state": status.get("state", {}),
                                                         "messageId": data.get("replyTo")}),
                Done(type="done", data={"lastEventId": data.get("lastEventId")})]
    if event_type == "error":
        error = {"code": data.get("code", "AGENT_FAILED"), "message": data.get("message") or data.get("error", "")}
        failed = [] if error["code"] == "REPLY_TIMEOUT" else [
            MessageFailed(type="message.failed", data={"messageId": data.get("messageId"), "error": error},
                          id=event_id)]
        return [*failed, ErrorEvent(type="error", data=error)]
    return [parse_event(event_type, raw_data, event_id)]


def events_of_reply(body: dict[str, Any]) -> list[Event]:
    """The events a server without SSE support stands for when it answers a stream request with the whole reply."""
    return [
        MessageCreated(type="message.created", data={"message": body["userMessage"]}),
        MessageCompleted(type="message.completed", data={
            "message": {k: v for k, v in body.items() if k not in ("userMessage", "sessionStatus", "debug")},
            "replyTo": body.get("replyTo"), "sessionStatus": body.get("sessionStatus")}),
        StateUpdated(type="state.updated", data={"state": (body.get("sessionStatus") or {}).get("state", {}),
                                                 "messageId": body["userMessage"]["id"]}),
        Done(type="done"),
    ]
