"""Session lifecycle with real processes: API, Celery worker and two Celery beats over Postgres and Redis.

A stack of its own with fast settings: a timeout "minute" lasts one second, the beat sweeps every half
second, and message leases and locks last two seconds, so expiry and recovery happen within seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine, select

from core.bus import Keys, decode_envelope
from core.db import create_sync_engine
from core.models import events_table, messages_table, sessions_table
from core.settings import Settings
from tests.support.databases import REDIS_URL, scratch_postgres
from tests.support.factories import SESSIONS, create_session, history, send_message
from tests.support.processes import Service, Stack, stack_env, wait_until

FAST = {
    "TIMEOUT_MINUTE_SECONDS": "1",
    "SWEEP_INTERVAL_SECONDS": "0.5",
    "SWEEP_LOCK_SECONDS": "2",
    "MESSAGE_LEASE_SECONDS": "2",
    "SESSION_LOCK_SECONDS": "2",
    "STUCK_PENDING_SECONDS": "1",
}
E = events_table.c
M = messages_table.c


@dataclass
class Lifecycle:
    stack: Stack
    beats: list[Service]
    engine: Engine
    redis: redis.Redis
    keys: Keys

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.stack.base_url, timeout=30)

    def event_types(self, session_id: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.scalars(select(E.type).where(E.session_id == uuid.UUID(session_id)).order_by(E.seq)))

    def lifecycle_events(self, session_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(E.type, E.data).where(
                E.session_id == uuid.UUID(session_id), E.type.like("session.%")).order_by(E.seq)).all()
        return [{"type": row.type, **row.data} for row in rows]

    def stream_types(self, session_id: str) -> list[str]:
        return [decode_envelope(fields[b"e"])["type"] for _, fields in self.redis.xrange(self.keys.stream(session_id))]

    def message(self, message_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(messages_table).where(M.id == uuid.UUID(message_id))).one()

    def replies_to(self, message_id: str) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(M.id).where(M.reply_to == uuid.UUID(message_id))).all())

    def session_status(self, session_id: str) -> str:
        with self.engine.connect() as conn:
            return conn.scalar(select(sessions_table.c.status).where(sessions_table.c.id == uuid.UUID(session_id)))


@pytest.fixture(scope="module")
def lifecycle(run_id: str, redis_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lifecycle]:
    # A database of its own: the beat sweeps every row, and must not re-queue other stacks' messages.
    with scratch_postgres(f"as_test_{run_id}_lifecycle") as database_url:
        prefix = f"{redis_prefix}lifecycle:"
        stack = Stack(env=stack_env(database_url, prefix, f"q-{run_id}-lifecycle", **FAST),
                      log_dir=Path(tmp_path_factory.mktemp("stack-lifecycle")))
        engine = create_sync_engine(Settings(_env_file=None, database_url=database_url))
        client = redis.Redis.from_url(REDIS_URL)
        try:
            stack.start_worker()
            # Two beats, as if a second had been started by mistake: sweeps must still act one at a time.
            beats = [stack.start_beat(), stack.start_beat()]
            stack.start_api()
            yield Lifecycle(stack=stack, beats=beats, engine=engine, redis=client, keys=Keys(prefix))
        except BaseException:
            print(stack.logs())
            raise
        finally:
            stack.stop()
            engine.dispose()
            client.close()


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_idle_session_is_warned_once_then_expires_without_any_api_call(lifecycle: Lifecycle) -> None:
    with lifecycle.client() as client:
        sid = create_session(client, timeoutConfig={"timeoutMinutes": 5, "warningThresholdMinutes": 2})["sessionId"]
        assert send_message(client, sid, "Hello, I need some advice").status_code == 201

    # From here on nobody calls the API: only the beat can move the session on.
    wait_until(lambda: lifecycle.session_status(sid) == "expired", 20, "the beat to expire the session")

    events = lifecycle.lifecycle_events(sid)
    assert [event["type"] for event in events] == ["session.expiring", "session.expired"]
    assert all(beat.process.poll() is None for beat in lifecycle.beats)  # both beats were scheduling sweeps
    warning, expiry = events
    assert warning["expiresAt"] == expiry["expiredAt"] and warning["warningThresholdMinutes"] == 2
    assert [t for t in lifecycle.stream_types(sid) if t.startswith("session.")] == [
        "session.expiring", "session.expired"]
    with lifecycle.client() as client:
        refused = send_message(client, sid, "Are you still there?")
        assert refused.status_code == 410 and refused.json()["error"]["code"] == "SESSION_EXPIRED"
        assert [m["role"] for m in history(client, sid)["messages"]] == ["agent", "user"]
        assert client.get(f"{SESSIONS}/{sid}").json()["status"] == "expired"


def test_renewal_earns_a_new_warning(lifecycle: Lifecycle) -> None:
    with lifecycle.client() as client:
        sid = create_session(client, timeoutConfig={"timeoutMinutes": 5, "warningThresholdMinutes": 2})["sessionId"]
        wait_until(lambda: "session.expiring" in lifecycle.event_types(sid), 20, "the first warning")
        warned = client.get(f"{SESSIONS}/{sid}").json()
        renewed = client.post(f"{SESSIONS}/{sid}/heartbeat")
        assert warned["isNearExpiration"] is True
        assert renewed.status_code == 200 and renewed.json()["renewalCount"] == 1
        assert renewed.json()["isNearExpiration"] is False

    wait_until(lambda: lifecycle.session_status(sid) == "expired", 20, "the beat to expire the session")

    assert [event["type"] for event in lifecycle.lifecycle_events(sid)] == [
        "session.expiring", "session.renewed", "session.expiring", "session.expired"]


def test_paused_session_expires_at_its_maximum_duration(lifecycle: Lifecycle) -> None:
    with lifecycle.client() as client:
        session = create_session(client, timeoutConfig={"timeoutMinutes": 5, "maxDurationMinutes": 6})
        sid = session["sessionId"]
        paused = client.post(f"{SESSIONS}/{sid}/pause").json()
        refused = send_message(client, sid, "hello?")

    deadline = parse_time(session["createdAt"]) + timedelta(seconds=6)
    assert parse_time(paused["expiresAt"]) == deadline  # the idle clock stopped; only the maximum runs
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "SESSION_PAUSED"
    wait_until(lambda: lifecycle.session_status(sid) == "expired", 20, "the beat to expire the paused session")
    events = lifecycle.lifecycle_events(sid)
    assert [event["type"] for event in events] == ["session.paused", "session.expiring", "session.expired"]
    assert parse_time(events[-1]["expiredAt"]) == deadline


def test_worker_killed_mid_message_still_answers_it_exactly_once(lifecycle: Lifecycle) -> None:
    with lifecycle.client() as client:
        agent = client.post("/api/agents", json={"name": f"slow-{uuid.uuid4().hex[:8]}", "provider": "eliza",
                                                 "settings": {"chunk_delay_ms": 300}})
        assert agent.status_code == 201, agent.text
        sid = create_session(client, agentId=agent.json()["id"], timeoutConfig={"timeoutMinutes": 120})["sessionId"]
        accepted = send_message(client, sid, "I am worried about my exams next week", transport="websocket")
        assert accepted.status_code == 202, accepted.text
        message_id = accepted.json()["userMessage"]["id"]
    worker = next(service for service in lifecycle.stack.services if service.name == "worker")
    wait_until(lambda: lifecycle.message(message_id).status == "processing", 15, "the worker to take the message")

    worker.kill()
    assert lifecycle.message(message_id).status == "processing"  # it died before answering
    lifecycle.stack.start_worker()

    wait_until(lambda: lifecycle.message(message_id).status == "completed", 30, "the message to be answered")
    assert lifecycle.replies_to(message_id) == 1
    assert lifecycle.message(message_id).attempts == 2
    completed = [t for t in lifecycle.event_types(sid) if t == "message.completed"]
    assert completed == ["message.completed"]
    with lifecycle.client() as client:
        assert [m["role"] for m in history(client, sid)["messages"]] == ["agent", "user"]
