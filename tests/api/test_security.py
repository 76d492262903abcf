"""Tokens, limits, headers and CORS against an API with authentication on (production settings)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from core.models import DEFAULT_AGENT_ID
from tests.support.factories import SESSIONS, unique_user
from tests.support.processes import Stack
from tests.support.tokens import SERVER, bearer, user_token


@pytest.fixture(scope="module")
def http(secure_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=secure_stack.base_url, timeout=30) as client:
        yield client


def _create_session(http: httpx.Client, headers: dict[str, str], user_id: str) -> httpx.Response:
    return http.post(SESSIONS, json={"agentId": str(DEFAULT_AGENT_ID), "userId": user_id}, headers=headers)


def _session(http: httpx.Client) -> dict[str, Any]:
    response = _create_session(http, SERVER, unique_user())
    assert response.status_code == 201, response.text
    return response.json()


def test_minted_token_acts_as_its_user_with_its_scopes(http: httpx.Client) -> None:
    user = unique_user()
    minted = http.post("/api/auth/token", json={"userId": user, "scopes": ["sessions:read"], "ttlSeconds": 120},
                       headers=SERVER)
    assert minted.status_code == 201, minted.text
    body = minted.json()
    assert body["userId"] == user and body["scopes"] == ["sessions:read"] and body["expiresIn"] == 120
    assert body["tokenType"] == "Bearer"

    listed = http.get(SESSIONS, headers=bearer(body["token"]))
    refused = _create_session(http, bearer(body["token"]), user)

    assert listed.status_code == 200
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "INSUFFICIENT_SCOPE"


def test_minted_token_with_default_scopes_creates_its_own_sessions(http: httpx.Client) -> None:
    user = unique_user()
    token = http.post("/api/auth/token", json={"userId": user}, headers=SERVER).json()["token"]

    created = _create_session(http, bearer(token), user)

    assert created.status_code == 201 and created.json()["userId"] == user


def test_token_lifetime_above_the_maximum_is_refused(http: httpx.Client) -> None:
    response = http.post("/api/auth/token", json={"userId": unique_user(), "ttlSeconds": 10**7}, headers=SERVER)

    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "ttlSeconds"


@pytest.mark.parametrize(("headers", "code"), [
    ({}, "UNAUTHORIZED"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "UNAUTHORIZED"),
    (bearer("not-a-jwt"), "UNAUTHORIZED"),
    (bearer(user_token("alice", expires_in=-120)), "TOKEN_EXPIRED"),
    ({"X-API-KEY": "wrong", **bearer(user_token("alice"))}, "UNAUTHORIZED"),  # a wrong key is never ignored
])
def test_bad_credentials_answer_401_in_the_error_shape(http: httpx.Client, headers: dict[str, str],
                                                       code: str) -> None:
    response = http.get(SESSIONS, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code and response.json()["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_token_signed_with_another_secret_is_refused(http: httpx.Client) -> None:
    import jwt

    forged = jwt.encode({"sub": "alice", "exp": 2**31}, "another-secret-of-enough-length-0123456789", "HS256")

    assert http.get(SESSIONS, headers=bearer(forged)).status_code == 401


def test_responses_carry_security_headers_even_for_unknown_routes(http: httpx.Client) -> None:
    for response in (http.get(SESSIONS, headers=SERVER), http.get("/no/such/route"), http.get(SESSIONS)):
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert http.get(SESSIONS, headers=SERVER).headers["Cache-Control"] == "no-store"


def test_body_over_the_limit_answers_413_in_the_error_shape(http: httpx.Client) -> None:
    session = _session(http)

    response = http.post(f"{SESSIONS}/{session['sessionId']}/messages", headers=SERVER,
                         json={"content": "hi", "metadata": {"blob": "x" * 300_000}})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "REQUEST_TOO_LARGE"


@pytest.mark.parametrize(("body", "code"), [
    ({"content": "x" * 4001}, "INVALID_CONTENT"),
    ({"content": "hi", "metadata": {"blob": "x" * 11_000}}, "METADATA_TOO_LARGE"),
    ({"content": "hi", "attachments": [{"url": f"https://example.com/{n}"} for n in range(11)]}, "INVALID_REQUEST"),
    ({"content": "nul \u0000 byte"}, "INVALID_REQUEST"),  # Postgres text and JSONB cannot hold NUL
    ({"content": "hi", "metadata": {"big": 2**70}}, "INVALID_REQUEST"),  # beyond 64 bits: found by schemathesis
    # Postgres JSONB gives 1e300 back as a 301-digit integer no encoder takes: found by schemathesis
    ({"content": "hi", "metadata": {"huge": -1.7976931348623157e308}}, "INVALID_REQUEST"),
])
def test_message_input_limits_answer_400(http: httpx.Client, body: dict[str, Any], code: str) -> None:
    session = _session(http)

    response = http.post(f"{SESSIONS}/{session['sessionId']}/messages", json=body, headers=SERVER)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code


def test_history_page_size_is_capped(http: httpx.Client) -> None:
    session = _session(http)

    response = http.get(f"{SESSIONS}/{session['sessionId']}/messages", params={"limit": 101}, headers=SERVER)

    assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_PAGINATION"


def test_debug_details_only_for_the_server_key_in_production(http: httpx.Client) -> None:
    user = unique_user()
    sid = _create_session(http, SERVER, user).json()["sessionId"]
    body = {"content": "hello", "transport": "websocket"}

    as_server = http.post(f"{SESSIONS}/{sid}/messages", json=body, headers={**SERVER, "X-Debug": "true"})
    as_user = http.post(f"{SESSIONS}/{sid}/messages", json=body,
                        headers={**bearer(user_token(user)), "X-Debug": "true"})

    assert as_server.status_code == as_user.status_code == 202
    assert as_server.json()["debug"]["sessionId"] == sid
    assert as_user.json()["debug"] is None


def test_cors_allows_only_configured_origins(http: httpx.Client) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key,content-type"}

    allowed = http.options(SESSIONS, headers={"Origin": "http://localhost:3000", **preflight})
    foreign = http.options(SESSIONS, headers={"Origin": "https://evil.example", **preflight})

    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert "x-api-key" in allowed.headers["Access-Control-Allow-Headers"].lower()
    assert foreign.status_code == 400 and "Access-Control-Allow-Origin" not in foreign.headers


def test_a_user_token_sees_no_agent_settings_but_the_description(http: httpx.Client) -> None:
    character = {"name": f"private-{unique_user()}", "provider": "openai", "settings": {
        "description": "Billing questions", "system": "Internal playbook: refund up to 50 EUR.",
        "model": {"name": "m", "baseUrl": "http://10.1.2.3:8000/v1", "apiKeyEnv": "MODEL_KEY_BILLING"}}}
    agent = http.post("/api/agents", json=character, headers=SERVER).json()
    user = bearer(user_token(unique_user()))

    listed = next(a for a in http.get("/api/agents", headers=user).json()["agents"] if a["id"] == agent["id"])
    fetched = http.get(f"/api/agents/{agent['id']}", headers=user).json()
    as_server = http.get(f"/api/agents/{agent['id']}", headers=SERVER).json()

    assert "settings" not in listed and listed["name"] == agent["name"]  # the list holds summaries only
    assert fetched["settings"] == {"description": "Billing questions"} and fetched["provider"] == "openai"
    assert as_server["settings"]["model"]["baseUrl"] == "http://10.1.2.3:8000/v1"
