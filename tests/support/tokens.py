"""Credentials for tests against an API started with authentication on."""

from __future__ import annotations

import time
from typing import Any

import jwt

SERVER_KEY = "test-server-key-0123456789abcdef"
JWT_SECRET = "test-jwt-secret-0123456789abcdef-0123456789abcdef"
AUTH_ENV = {"AGENT_SESSIONS_API_KEY": SERVER_KEY, "JWT_SECRET": JWT_SECRET}


def user_token(user_id: str, scope: str | None = None, expires_in: int = 300, **claims: Any) -> str:
    payload: dict[str, Any] = {"sub": user_id, "exp": int(time.time()) + expires_in, **claims}
    if scope is not None:
        payload["scope"] = scope
    return jwt.encode(payload, JWT_SECRET, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


SERVER = {"X-API-KEY": SERVER_KEY}
