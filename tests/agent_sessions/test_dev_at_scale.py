"""`agent-sessions dev` as shipped (SQLite, the embedded Redis, one worker with no flags) carries 500 concurrent
model-backed sends: each answered exactly once, with the model server seeing the generations at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import load_model
from tests.support.processes import free_port, wait_until

SENDS = 500
SESSIONS = "/api/messaging/sessions"


@pytest.fixture()
def dev_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_PREFIX")}
    with (tmp_path / "dev.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "agent_sessions.cli", "dev", "--port", str(port)],
                                   cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _answers(url), 60, "agent-sessions dev to serve")
            yield url
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}{SESSIONS}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_dev_as_shipped_answers_500_model_backed_sends_at_once(dev_url: str) -> None:
    # A generation lasting 13.7 s (the first token after 2 s, then 40 tokens 300 ms apart): longer than it takes
    # to send the 500 messages on SQLite, so they all generate at once.
    with load_model.running() as model, httpx.Client(base_url=dev_url, timeout=120) as client:
        agent = client.post("/api/agents", json={"name": f"dev-scale-{uuid.uuid4().hex[:6]}", "provider": "openai",
                                                 "settings": {"model": {"name": "load-ttft2000-n40-gap300",
                                                                        "baseUrl": model.base_url, "apiKeyEnv": None}}})
        assert agent.status_code == 201, agent.text

        def new_session(n: int) -> str:
            response = client.post(SESSIONS, json={"agentId": agent.json()["id"], "userId": f"dev-scale-{n}"})
            assert response.status_code == 201, response.text
            return str(response.json()["sessionId"])

        def send(session_id: str) -> int:
            return client.post(f"{SESSIONS}/{session_id}/messages", json={"content": "Hello there",
                                                                         "transport": "websocket"}).status_code

        with ThreadPoolExecutor(32) as pool:
            sessions = list(pool.map(new_session, range(SENDS)))
            model.reset_stats()
            assert set(pool.map(send, sessions)) == {202}

            def replies(session_id: str) -> list[str]:
                messages = client.get(f"{SESSIONS}/{session_id}/messages").json()["messages"]
                return [m["replyTo"] for m in messages if m["role"] == "agent"]

            wait_until(lambda: model.stats()["completed"] >= SENDS, 180, "every generation to end", interval=1)
            wait_until(lambda: all(len(replies(s)) == 1 for s in sessions), 60, "every reply to be stored",
                       interval=1)
        stats = model.stats()
    assert stats["calls"] == SENDS  # one model call per send: nothing repeated, nothing lost
    assert stats["peakInFlight"] >= SENDS * 0.8, stats  # carried at once, not a few at a time
