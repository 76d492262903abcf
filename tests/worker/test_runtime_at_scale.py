"""One worker process carrying hundreds of model generations at once, against the load model server: every
message answered exactly once and in order, through a worker killed mid-flight and a warm shutdown.

Real API and worker processes on Postgres and Redis; an `openai` agent whose model server makes each call last
seconds (tests/support/load_model.py). Only HTTP, the history, process signals and the model server's own
counters are looked at.
"""

from __future__ import annotations

import functools
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support import load_model
from tests.support.factories import create_session, history, send_message
from tests.support.processes import Stack, stack_env, wait_until

# A generation lasting 2.5 s: the first token after 1 s, then 16 tokens 100 ms apart.
SLOW = "load-ttft1000-n16-gap100"


@pytest.fixture(scope="module")
def model() -> Iterator[load_model.LoadModelProcess]:
    with load_model.running() as server:
        yield server


@pytest.fixture()
def stack(postgres_url: str, redis_prefix: str, run_id: str, tmp_path: Path) -> Iterator[Stack]:
    """An API and no worker yet: each test starts (and stops, or kills) its own."""
    env = stack_env(postgres_url, f"{redis_prefix}scale-{uuid.uuid4().hex[:6]}:",
                    f"q-{run_id}-scale-{uuid.uuid4().hex[:6]}", REPLY_WAIT_SECONDS="60")
    stack = Stack(env=env, log_dir=tmp_path)
    try:
        stack.start_api()
        yield stack
    finally:
        stack.stop()


def llm_agent(client: httpx.Client, model: load_model.LoadModelProcess, model_name: str) -> str:
    response = client.post("/api/agents", json={
        "name": f"scale-{uuid.uuid4().hex[:8]}", "provider": "openai",
        "settings": {"model": {"name": model_name, "baseUrl": model.base_url, "apiKeyEnv": None,
                               "requestTimeoutSeconds": 30}}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def send_all(client: httpx.Client, sessions: list[str], per_session: int) -> dict[str, list[str]]:
    """Send `per_session` messages to every session at once (websocket transport: 202 at once); their ids."""
    def send(session_id: str, n: int) -> tuple[str, str]:
        response = send_message(client, session_id, f"message {n}", transport="websocket")
        assert response.status_code == 202, response.text
        return session_id, response.json()["userMessage"]["id"]

    sent: dict[str, list[str]] = {session_id: [] for session_id in sessions}
    with ThreadPoolExecutor(32) as pool:
        for n in range(per_session):  # in rounds, so each session's messages are numbered in send order
            for session_id, message_id in pool.map(functools.partial(send, n=n), sessions):
                sent[session_id].append(message_id)
    return sent


def all_answered(client: httpx.Client, sent: dict[str, list[str]]) -> bool:
    return all(sum(m["role"] == "agent" for m in history(client, session_id, limit=100)["messages"]) >= len(ids)
               for session_id, ids in sent.items())


def assert_answered_once_in_order(client: httpx.Client, sent: dict[str, list[str]]) -> None:
    for session_id, user_ids in sent.items():
        messages = sorted(history(client, session_id, limit=100)["messages"], key=lambda m: m["seq"])
        replies = [m["replyTo"] for m in messages if m["role"] == "agent"]
        assert replies == user_ids, (session_id, replies, user_ids)  # one reply each, in the order sent
        assert all(m["status"] == "completed" for m in messages)


def sessions_of(client: httpx.Client, agent_id: str, count: int) -> list[str]:
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda _: create_session(client, agentId=agent_id)["sessionId"], range(count)))


def start_slow_generations(client: httpx.Client, model: load_model.LoadModelProcess,
                           count: int) -> tuple[list[str], dict[str, list[str]]]:
    """`count` sessions, one message each, returned once all `count` generations are running at the model."""
    sessions = sessions_of(client, llm_agent(client, model, SLOW), count)
    model.reset_stats()
    sent = send_all(client, sessions, per_session=1)
    wait_until(lambda: model.stats()["inFlight"] >= count, 60, f"{count} generations in flight", interval=0.1)
    return sessions, sent


def test_one_worker_carries_200_generations_at_once_each_answered_once_in_order(
        stack: Stack, model: load_model.LoadModelProcess) -> None:
    stack.start_worker()
    with httpx.Client(base_url=stack.base_url, timeout=60) as client:
        sessions = sessions_of(client, llm_agent(client, model, SLOW), 100)
        model.reset_stats()

        sent = send_all(client, sessions, per_session=2)  # 200 messages, two per session

        wait_until(lambda: all_answered(client, sent), 120, "every message to be answered", interval=0.5)
        assert_answered_once_in_order(client, sent)
    stats = model.stats()
    assert stats["calls"] == 200  # no model call repeated
    # One worker process: 100 sessions' first messages were generating at the same moment (the thread-per-message
    # worker ran 4 at a time).
    assert stats["peakInFlight"] >= 90, stats


def test_a_worker_killed_with_100_generations_in_flight_loses_and_repeats_no_reply(
        stack: Stack, model: load_model.LoadModelProcess) -> None:
    doomed = stack.start_worker()
    with httpx.Client(base_url=stack.base_url, timeout=60) as client:
        _, sent = start_slow_generations(client, model, 100)

        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(10)
        stack.start_worker()

        wait_until(lambda: all_answered(client, sent), 120, "every message to be answered", interval=0.5)
        assert_answered_once_in_order(client, sent)


def test_a_warm_shutdown_lets_running_generations_finish(stack: Stack,
                                                          model: load_model.LoadModelProcess) -> None:
    worker = stack.start_worker()
    with httpx.Client(base_url=stack.base_url, timeout=60) as client:
        _, sent = start_slow_generations(client, model, 50)

        worker.process.send_signal(signal.SIGTERM)
        assert worker.process.wait(60) == 0

        assert all_answered(client, sent)  # answered by the stopping worker itself, before it exited
        assert_answered_once_in_order(client, sent)
        assert model.stats()["abandoned"] == 0


def test_a_worker_out_of_grace_hands_its_generations_to_the_next(postgres_url: str, redis_prefix: str, run_id: str,
                                                                 tmp_path: Path,
                                                                 model: load_model.LoadModelProcess) -> None:
    env = stack_env(postgres_url, f"{redis_prefix}grace-{uuid.uuid4().hex[:6]}:", f"q-{run_id}-grace",
                    WORKER_SHUTDOWN_GRACE_SECONDS="0.2")
    with Stack(env=env, log_dir=tmp_path).running() as stack, \
            httpx.Client(base_url=stack.base_url, timeout=60) as client:
        stopping = stack.start_worker()
        sessions, sent = start_slow_generations(client, model, 30)

        stopping.process.send_signal(signal.SIGTERM)
        assert stopping.process.wait(60) == 0
        handed_back = [m for session_id in sessions for m in history(client, session_id)["messages"]
                       if m["role"] == "user" and m["status"] == "pending"]
        stack.start_worker()

        wait_until(lambda: all_answered(client, sent), 120, "every message to be answered", interval=0.5)
        assert_answered_once_in_order(client, sent)
    assert len(handed_back) == 30  # none was failed or left `processing` for the lease to expire

