"""Small builders for test data, over the public HTTP API."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from core.models import DEFAULT_AGENT_ID

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
