"""An SSE reader written for ElizaOS (tests/node/elizaos-sse-reader.mjs, Node's fetch) reads our SSE reply
unchanged: `user_message`, `chunk` {messageId, chunk, index}, `done` {text, thought, actions}, `error` {error}."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import httpx

from tests.support.factories import create_session, history
from tests.support.node import node_client_package
from tests.support.processes import Stack


def read_reply(stack: Stack, session_id: str, content: str) -> dict[str, Any]:
    reader = node_client_package() / "elizaos-sse-reader.mjs"
    completed = subprocess.run(["node", str(reader), stack.base_url, session_id, content], capture_output=True,
                               text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_an_elizaos_sse_reader_gets_the_streamed_reply(client: httpx.Client, stack: Stack) -> None:
    sid = create_session(client, userId=str(uuid.uuid4()))["sessionId"]

    seen = read_reply(stack, sid, "I remember my childhood")

    assert seen["status"] == 200 and seen["contentType"].startswith("text/event-stream")
    assert seen["order"][0] == "user_message" and seen["order"][-1] == "done"
    assert set(seen["order"][1:-1]) == {"chunk"} and seen["indexes"] == list(range(len(seen["indexes"])))
    assert seen["userMessage"]["content"] == "I remember my childhood"
    assert seen["text"] == seen["done"]["text"] and seen["done"]["thought"]
    assert isinstance(seen["done"]["actions"], list)
    assert [m["content"] for m in history(client, sid)["messages"] if m["isAgent"]] == [seen["done"]["text"]]


def test_an_elizaos_sse_reader_gets_the_error_when_the_agent_fails(client: httpx.Client, stack: Stack) -> None:
    # Its API key variable (designated by its MODEL_KEY_ prefix) is not set in the worker: the agent cannot answer.
    broken = client.post("/api/agents", json={"name": f"unavailable-{uuid.uuid4().hex[:8]}", "provider": "openai",
                                              "settings": {"model": {"name": "m", "baseUrl": "http://127.0.0.1:9/v1",
                                                                     "apiKeyEnv": "MODEL_KEY_AS_TEST_UNSET"}}})
    sid = create_session(client, agentId=broken.json()["id"])["sessionId"]

    seen = read_reply(stack, sid, "Hello?")

    assert seen["order"] == ["user_message", "error"]
    assert "MODEL_KEY_AS_TEST_UNSET" in seen["error"] and seen["done"] is None
