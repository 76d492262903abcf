"""An `openai`-provider agent end to end: API process + Celery worker + Redis, talking through the real
`openai` SDK to a local OpenAI-compatible server (`fake_openai`), on SQLite and on Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pytest
import redis

from core.agents.prompt import message_tokens
from core.bus import Keys
from tests.support.factories import create_session, history, send_message
from tests.support.openai_server import Fail, FakeOpenAI
from tests.support.processes import Stack, wait_until

SYSTEM = "You are the support assistant of Acme Bank. Be brief."


def create_llm_agent(client: httpx.Client, fake: FakeOpenAI, model: str, **model_settings: Any) -> dict[str, Any]:
    document = {"name": f"llm-{uuid.uuid4().hex[:8]}", "provider": "openai", "settings": {
        "system": SYSTEM,
        "model": {"name": model, "baseUrl": fake.base_url, "apiKeyEnv": "MODEL_KEY_TEST_LLM",
                  "requestTimeoutSeconds": 5, **model_settings}}}
    response = client.post("/api/agents", json=document)
    assert response.status_code == 201, response.text
    return response.json()


def new_model(fake: FakeOpenAI, *steps: Any) -> str:
    return fake.add_model(f"model-{uuid.uuid4().hex[:8]}", *steps)


@contextmanager
def session_events(stack: Stack, redis_client: redis.Redis, session_id: str) -> Iterator[list[dict[str, Any]]]:
    """Every event published on the session's channels while the block runs (chunks included)."""
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    keys = Keys(stack.env["REDIS_PREFIX"])
    pubsub.subscribe(keys.channel(session_id), keys.chunk_channel(session_id))
    events: list[dict[str, Any]] = []
    try:
        yield events
        # The worker's events may come before or after the API's own (message.created...): look for the outcome.
        wait_until(lambda: any(e["type"] in ("message.completed", "message.failed") for e in _drain(pubsub, events)),
                   10, "the outcome event")
    finally:
        pubsub.close()


def _drain(pubsub: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    while (message := pubsub.get_message(timeout=0.05)) is not None:
        events.append(orjson.loads(message["data"]))
    return events


def statuses(client: httpx.Client, session_id: str) -> list[str]:
    return [m["status"] for m in history(client, session_id)["messages"] if m["role"] == "user"]


def test_reply_streams_and_the_prompt_holds_character_preferences_and_recent_history(
        stack: Stack, client: httpx.Client, fake_openai: FakeOpenAI, redis_client: redis.Redis) -> None:
    model = new_model(fake_openai)
    agent = create_llm_agent(client, fake_openai, model, contextTokens=1500, maxTokens=200)
    sid = create_session(client, agentId=agent["id"])["sessionId"]
    for content in ("Hi, my name is Alice", "a" * 1600, "b" * 1600):  # ~400 tokens each, and as much in replies
        assert send_message(client, sid, content).status_code == 201

    with session_events(stack, redis_client, sid) as events:
        response = send_message(client, sid, "What is my name?")

    assert response.status_code == 201, response.text
    reply = response.json()
    assert reply["content"] == "The model heard: What is my name?" and reply["metadata"]["confidence"] == 0.7
    chunks = [e["data"] for e in events if e["type"] == "message.chunk"]
    assert len(chunks) > 1 and all(c["messageId"] == reply["id"] for c in chunks)
    assert "".join(c["delta"] for c in chunks) == reply["content"]
    assert [m["content"] for m in history(client, sid, limit=1)["messages"]] == [reply["content"]]  # stored

    request = fake_openai.requests_for(model)[-1]
    system, *earlier, last = request.messages
    assert SYSTEM in system["content"] and "name: Alice" in system["content"]  # learned, though its message is gone
    stored = sorted(history(client, sid)["messages"], key=lambda m: m["seq"])[:-2]
    assert [m["content"] for m in earlier] == [m["content"] for m in stored[-len(earlier):]]  # newest, whole
    assert 0 < len(earlier) < len(stored)
    assert f"({len(stored) - len(earlier)} earlier messages of this conversation are not shown here.)" \
        in system["content"]
    assert last == {"role": "user", "content": "What is my name?"}
    assert sum(message_tokens(m["content"]) for m in request.messages) <= 1500 - 200


def test_history_messages_bounds_what_the_worker_hands_the_agent(
        client: httpx.Client, fake_openai: FakeOpenAI) -> None:
    model = new_model(fake_openai)
    agent = create_llm_agent(client, fake_openai, model)
    assert client.patch(f"/api/agents/{agent['id']}", json={"settings": {"historyMessages": 3}}).status_code == 200
    sid = create_session(client, agentId=agent["id"])["sessionId"]
    for n in range(3):
        assert send_message(client, sid, f"turn {n}").status_code == 201

    system, *earlier, last = fake_openai.requests_for(model)[-1].messages

    assert [m["content"] for m in earlier] == ["The model heard: turn 0", "turn 1", "The model heard: turn 1"]
    assert last["content"] == "turn 2" and "not shown" not in system["content"]  # only budget drops are noted


def test_transient_errors_are_retried_then_the_reply_is_stored(
        client: httpx.Client, fake_openai: FakeOpenAI) -> None:
    model = new_model(fake_openai, Fail(503, "upstream overloaded"), Fail(429, "slow down"))
    sid = create_session(client, agentId=create_llm_agent(client, fake_openai, model)["id"])["sessionId"]

    response = send_message(client, sid, "Are you there?")

    assert response.status_code == 201, response.text
    assert response.json()["content"] == "The model heard: Are you there?"
    assert len(fake_openai.requests_for(model)) == 3
    assert statuses(client, sid) == ["completed"]


@pytest.mark.parametrize(("settings", "steps", "reason"), [
    ({"apiKeyEnv": "MODEL_KEY_TEST_LLM_WRONG"}, (), "the model server answered 401 (the API key was refused)"),
    ({}, (Fail(400, "This model's maximum context length is 8192 tokens.", "context_length_exceeded"),),
     "the model server answered 400 (bad request (for example a context too long for the model))"),
], ids=["bad-key", "context-too-long"])
def test_non_transient_errors_fail_at_once_with_a_stable_reason(
        client: httpx.Client, fake_openai: FakeOpenAI, settings: dict[str, Any], steps: tuple[Any, ...],
        reason: str) -> None:
    model = new_model(fake_openai, *steps)
    sid = create_session(client, agentId=create_llm_agent(client, fake_openai, model, **settings)["id"])["sessionId"]

    response = send_message(client, sid, "Hello?")

    assert response.status_code == 502, response.text
    assert response.json()["message"] == reason
    assert len(fake_openai.requests_for(model)) == 1  # not retried
    assert statuses(client, sid) == ["failed"]


def test_unknown_model_fails_at_once(client: httpx.Client, fake_openai: FakeOpenAI) -> None:
    model = f"missing-{uuid.uuid4().hex[:8]}"
    sid = create_session(client, agentId=create_llm_agent(client, fake_openai, model)["id"])["sessionId"]

    response = send_message(client, sid, "Hello?")

    assert response.status_code == 502
    assert response.json()["message"] == "the model server answered 404 (unknown model or endpoint)"
    assert len(fake_openai.requests_for(model)) == 1 and statuses(client, sid) == ["failed"]


def test_a_failed_model_call_shows_users_a_code_and_operators_the_detail(
        stack: Stack, client: httpx.Client, fake_openai: FakeOpenAI, redis_client: redis.Redis) -> None:
    upstream = f"internal error at http://10.20.30.40:8000/v1 ({uuid.uuid4().hex[:8]})"
    model = new_model(fake_openai, *[Fail(500, upstream)] * 3)
    sid = create_session(client, agentId=create_llm_agent(client, fake_openai, model)["id"])["sessionId"]

    with session_events(stack, redis_client, sid) as events:
        response = send_message(client, sid, "Hello?")

    [failed] = [e["data"] for e in events if e["type"] == "message.failed"]
    stored = history(client, sid)["messages"][0]
    shown = [response.text, str(failed), str(stored)]
    assert response.status_code == 502 and failed["error"]["code"] == stored["metadata"]["errorCode"] == \
        "MODEL_SERVER_ERROR"
    for text in shown:
        assert fake_openai.base_url not in text and "10.20.30.40" not in text and upstream not in text
    wait_until(lambda: any(upstream in str(record) for record in stack.log_records("worker")), 10,
               "the model server's own words in the worker's log")


def test_repeated_failures_open_the_breaker_which_fails_fast_then_closes_again(
        stack: Stack, client: httpx.Client, fake_openai: FakeOpenAI, redis_client: redis.Redis) -> None:
    model = new_model(fake_openai, Fail(503, "upstream down"), Fail(503, "upstream down"))
    agent = create_llm_agent(client, fake_openai, model,
                             circuitBreaker={"failureThreshold": 2, "cooldownSeconds": 3})
    sid = create_session(client, agentId=agent["id"])["sessionId"]

    tripping = send_message(client, sid, "first")  # two 503s open the breaker; the third attempt fails fast
    with session_events(stack, redis_client, sid) as events:
        fast = send_message(client, sid, "second")

    assert tripping.status_code == 502 and len(fake_openai.requests_for(model)) == 2
    assert fast.status_code == 502 and len(fake_openai.requests_for(model)) == 2  # the server was left alone
    assert "unavailable: 2 calls failed in a row (last: the model server answered 503 (server error))" \
        in fast.json()["message"]
    [failed] = [e["data"] for e in events if e["type"] == "message.failed"]
    assert failed["error"]["code"] == "AGENT_CIRCUIT_OPEN"

    wait_until(lambda: send_message(client, sid, "are you back?").status_code == 201, 15,
               "the breaker to let a trial through after its cool-down", interval=0.3)
    assert send_message(client, sid, "still there?").status_code == 201  # closed again
    assert set(statuses(client, sid)) == {"completed", "failed"}  # nothing left pending or processing
