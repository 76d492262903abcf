"""Small builders for test data, over the public HTTP API (or in the database, for what no request can make)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import insert, select, update

from core.db import create_sync_engine
from core.models import DEFAULT_AGENT_ID, messages_table, sessions_table
from core.settings import Settings

SESSIONS = "/api/messaging/sessions"


def unique_user() -> str:
    return f"user-{uuid.uuid4().hex[:10]}"


def create_session(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    body = {"agentId": str(DEFAULT_AGENT_ID), "userId": unique_user(), **overrides}
    response = client.post(SESSIONS, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def send_message(client: httpx.Client, session_id: str, content: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> httpx.Response:
    return client.post(f"{SESSIONS}/{session_id}/messages", json={"content": content, **extra}, headers=headers)


def history(client: httpx.Client, session_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"{SESSIONS}/{session_id}/messages", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def store_answered_messages(database_url: str, session_id: str, moments: list[datetime]) -> list[str]:
    """Answered user messages stored at these exact moments (after the session's messages, in this order):
    e.g. many in one millisecond, which no client can make happen on purpose. Returns their ids."""
    engine = create_sync_engine(Settings(database_url=database_url))
    try:
        with engine.begin() as conn:
            session = conn.execute(select(sessions_table).where(sessions_table.c.id == uuid.UUID(session_id))
                                   .with_for_update()).one()
            rows = [{"id": uuid.uuid4(), "session_id": session.id, "seq": session.next_seq + n, "role": "user",
                     "author_id": session.user_id, "content": f"message {session.next_seq + n}", "metadata": {},
                     "status": "completed", "created_at": moment, "completed_at": moment, "attempts": 0}
                    for n, moment in enumerate(moments, start=1)]
            conn.execute(insert(messages_table), rows)
            conn.execute(update(sessions_table).where(sessions_table.c.id == session.id).values(
                next_seq=session.next_seq + len(rows), message_count=session.message_count + len(rows)))
    finally:
        engine.dispose()
    return [str(row["id"]) for row in rows]
