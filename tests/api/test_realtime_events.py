"""Which socket.io events announce which session events (a pure mapping)."""

from __future__ import annotations

import uuid

import pytest

from api.realtime import socket_events
from core.services.sessions import Participants

WHO = Participants(session_id=uuid.uuid4(), user_id="user-1", agent_id=uuid.uuid4(), agent_name="Eliza")


def envelope(kind: str, data: dict) -> dict:  # type: ignore[type-arg]
    return {"id": "3-0", "type": kind, "sessionId": str(WHO.session_id), "data": data,
            "createdAt": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize(("kind", "name"), [("session.expiring", "sessionExpirationWarning"),
                                            ("session.expired", "sessionExpired"),
                                            ("session.renewed", "sessionRenewed")])
def test_lifecycle_events_keep_their_data_and_name_the_room(kind: str, name: str) -> None:
    [(sent, payload)] = socket_events(envelope(kind, {"reason": "timeout"}), WHO)

    assert sent == name
    assert payload == {"sessionId": str(WHO.session_id), "roomId": str(WHO.session_id), "reason": "timeout"}


def test_user_message_broadcast_names_the_user() -> None:
    message = {"id": "m1", "role": "user", "authorId": "user-1", "content": "hi", "createdAt": "2026-01-01T00:00:00Z",
               "metadata": {}, "replyTo": None}

    [(sent, payload)] = socket_events(envelope("message.created", {"message": message}), WHO)

    assert sent == "messageBroadcast"
    assert payload["senderName"] == "user-1" and payload["text"] == "hi" and payload["actions"] == []


def test_failed_reply_is_an_error_for_the_room() -> None:
    data = {"messageId": "m1", "replyTo": "m1", "error": {"code": "AGENT_FAILED", "message": "boom"}}

    [(sent, payload)] = socket_events(envelope("message.failed", data), WHO)

    assert sent == "messageError"
    assert payload["messageId"] == "m1" and payload["code"] == "AGENT_FAILED"
    assert payload["roomId"] == str(WHO.session_id)


@pytest.mark.parametrize("kind", ["state.updated", "session.paused", "session.ended"])
def test_events_without_a_socket_counterpart_are_not_sent(kind: str) -> None:
    assert socket_events(envelope(kind, {}), WHO) == []
