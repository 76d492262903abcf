"""Logs: the worker's lines about a message carry the request id of the API call that sent it."""

from __future__ import annotations

import uuid

import httpx

from tests.support.factories import create_session, send_message
from tests.support.processes import Stack, wait_until


def test_worker_log_line_carries_the_request_id_of_the_api_call(stack: Stack, client: httpx.Client) -> None:
    session_id = create_session(client)["sessionId"]
    request_id = f"req-{uuid.uuid4().hex}"

    response = send_message(client, session_id, "Hello there", headers={"X-Request-ID": request_id})

    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == request_id
    user_message_id = response.json()["userMessage"]["id"]

    def worker_lines() -> list[dict]:
        return [r for r in stack.log_records("worker") if r.get("request_id") == request_id]

    wait_until(lambda: any(r["event"] == "reply stored" for r in worker_lines()), 10, "the worker's log line")
    stored = next(r for r in worker_lines() if r["event"] == "reply stored")
    assert stored["session_id"] == session_id
    assert stored["message_id"] == user_message_id
    assert stored["task"] == "sessions.process" and uuid.UUID(stored["task_id"])
    assert stored["level"] == "info" and stored["timestamp"]

    def api_request_lines() -> list[dict]:
        return [r for r in stack.log_records("api") if r.get("request_id") == request_id and r["event"] == "request"]

    wait_until(lambda: bool(api_request_lines()), 5, "the API's request log line")
    request_line = api_request_lines()[0]
    assert request_line["route"] == "/api/messaging/sessions/{session_id}/messages"
    assert request_line["status"] == 201 and request_line["session_id"] == session_id
    assert request_line["message_id"] == user_message_id


def test_request_id_is_generated_when_missing_or_malformed(client: httpx.Client) -> None:
    generated = client.get("/api/agents")
    replaced = client.get("/api/agents", headers={"X-Request-ID": "bad id with spaces"})

    assert len(generated.headers["X-Request-ID"]) == 32
    assert replaced.headers["X-Request-ID"] != "bad id with spaces"
    assert len(replaced.headers["X-Request-ID"]) == 32
