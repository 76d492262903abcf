"""The blocking send's wait is a deadline: the session's other events do not extend it.

A real API process with no worker (so no reply ever comes) and a short REPLY_WAIT_SECONDS; another client
keeps the session busy with heartbeats, each of which renews the session and publishes `session.renewed`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.factories import SESSIONS, create_session, send_message
from tests.support.processes import Stack, stack_env
from tests.support.sse import read_events, read_until

REPLY_WAIT_SECONDS = 1.0
HEARTBEAT_EVERY_SECONDS = 0.2  # five heartbeats per wait limit
HEARTBEATS_AT_MOST = 150  # ~30 s: far past the limit, and still bounded


@pytest.fixture(scope="module")
def idle_stack(postgres_url: str, redis_prefix: str, run_id: str,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = stack_env(postgres_url, f"{redis_prefix}deadline:", f"q-{run_id}-deadline",
                    REPLY_WAIT_SECONDS=str(REPLY_WAIT_SECONDS))
    with Stack(env=env, log_dir=Path(tmp_path_factory.mktemp("deadline-stack"))).running(workers=0) as stack:
        yield stack


def _while_heartbeating(base_url: str, session_id: str, call: Callable[[], object]) -> tuple[object, int, bool]:
    """Run `call` while another client sends heartbeats; returns its result, the heartbeats sent meanwhile, and
    whether the heartbeats were still going when it returned (rather than stopped by their own bound)."""
    stop = threading.Event()
    sent = 0
    exhausted = False

    def beat() -> None:
        nonlocal sent, exhausted
        with httpx.Client(base_url=base_url, timeout=10) as client:
            for _ in range(HEARTBEATS_AT_MOST):
                if stop.wait(HEARTBEAT_EVERY_SECONDS):
                    return
                assert client.post(f"{SESSIONS}/{session_id}/heartbeat").status_code == 200
                sent += 1
        exhausted = True

    beater = threading.Thread(target=beat, daemon=True)
    beater.start()
    try:
        result = call()
    finally:
        still_going = not exhausted
        stop.set()
        beater.join()
    return result, sent, still_going


def test_blocking_send_answers_202_at_the_limit_while_heartbeats_keep_coming(idle_stack: Stack) -> None:
    with httpx.Client(base_url=idle_stack.base_url, timeout=60) as client:
        session_id = create_session(client)["sessionId"]

        response, heartbeats, still_going = _while_heartbeating(
            idle_stack.base_url, session_id, lambda: send_message(client, session_id, "Is anyone there?"))

    assert isinstance(response, httpx.Response)
    assert response.status_code == 202, response.text
    assert still_going, f"the send was answered only after the heartbeats stopped ({heartbeats} sent)"
    assert heartbeats >= 1  # the session did have other events while the send waited


def test_sse_reply_ends_with_reply_timeout_at_the_limit_while_heartbeats_keep_coming(idle_stack: Stack) -> None:
    with httpx.Client(base_url=idle_stack.base_url, timeout=60) as client:
        session_id = create_session(client)["sessionId"]

        def stream_reply() -> list[str]:
            with client.stream("POST", f"{SESSIONS}/{session_id}/messages",
                               json={"content": "Is anyone there?", "transport": "sse"}) as response:
                events = read_until(read_events(response), lambda event: event.event in ("done", "error"))
            return [event.payload.get("code", event.event) for event in events]

        kinds, heartbeats, still_going = _while_heartbeating(idle_stack.base_url, session_id, stream_reply)

    assert kinds == ["user_message", "REPLY_TIMEOUT"]
    assert still_going, f"the stream ended only after the heartbeats stopped ({heartbeats} sent)"
