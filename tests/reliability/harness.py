"""Fault-and-load harness: real API, worker and beat processes on their own Postgres and Redis, many concurrent
sessions, faults injected on a timeline, and an audit of the database (and of the event streams) at the end.

    python -m tests.reliability.harness --sessions 30 --messages-per-session 50 --duration 150 --workers 2 \\
        --faults worker_sigkill,worker_sigterm,redis_restart,postgres_restart,api_kill,slow_agent \\
        --memory-interval 5 --report out.json

Every send carries an `Idempotency-Key`; on 503, 409 CONFLICT, 429, a timeout or a dropped connection the
client retries with the SAME key (against the next API process, when there are several), and on 202 it
follows the reply through the history endpoint. The audit then counts, from the database: user messages
vs replies, duplicates, lost messages, per-session order violations, messages left pending/processing, and
the client's latency per phase (before, during and after each fault).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import create_engine, text

from tests.reliability.servers import PostgresServer, RedisServer, scratch_dir
from tests.support.openai_server import GOOD_KEY, FakeOpenAI
from tests.support.processes import Service, Stack, free_port

SESSIONS_PATH = "/api/messaging/sessions"
RETRYABLE_STATUSES = {409, 429, 500, 502, 503, 504}
SLOW_SESSION_MESSAGES = 3
DEFAULT_AGENT_ID = "e1a2a000-0000-4000-8000-000000000001"
SLOW_MODEL_KEY_ENV = "MODEL_KEY_RELIABILITY_SLOW"  # designated by the default MODEL_KEY_ prefix
PROBE_USER = "probe"
FAULTS = ("worker_sigkill", "worker_sigterm", "redis_restart", "postgres_restart", "api_kill", "slow_agent")
# Things a user might tell ELIZA; every message also carries a unique tag.
LINES = ("I feel anxious about my exams", "My mother never listens to me", "I am happy today",
         "Can you help me with my account?", "I think my computer hates me", "Why do I dream about the sea?",
         "I remember my first job", "Perhaps I should change careers", "You are not very helpful",
         "I need some advice about my brother")


@dataclass
class HarnessConfig:
    sessions: int = 20
    messages_per_session: int = 15
    duration: float = 20.0  # seconds over which each session spreads its messages (0: as fast as possible)
    faults: tuple[str, ...] = ("worker_sigkill", "redis_restart")
    chunk_delay_ms: int = 15  # per word: a reply takes a few hundred ms, so faults land mid-message
    slow_sessions: int = 0  # sessions on an agent slower than the blocking wait (the `slow_agent` fault sets 2)
    workers: int = 1
    worker_max_turns: int | None = None  # turns a worker runs at once (None: WORKER_MAX_TURNS's default)
    outage_seconds: float = 3.0  # how long Redis / Postgres stay down, and a killed API stays dead
    reply_wait_seconds: float = 5.0
    give_up_seconds: float = 120.0  # a client abandons one message after this long (counted as lost)
    settle_seconds: float = 60.0  # after the load, how long to wait for the last replies
    memory_interval: float = 0.0  # seconds between RSS samples of the API and workers (0: none)
    event_stream_sessions: int = 5  # sessions whose /events stream is audited (if the server has /events)
    seed: int = 8
    # True: the recovery settings a deployment has by default (sweep, leases, locks), not the shortened ones.
    production_settings: bool = False
    keep_dir: Path | None = None  # where logs go (default: a temporary directory, removed on success)

    def __post_init__(self) -> None:
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; choose from {', '.join(FAULTS)}")
        if "slow_agent" in self.faults and not self.slow_sessions:
            self.slow_sessions = 2

    @property
    def api_count(self) -> int:
        return 2 if "api_kill" in self.faults else 1

    @property
    def timed_faults(self) -> list[str]:
        return [name for name in self.faults if name != "slow_agent"]


# ---------------------------------------------------------------------------------------------------------
# The system under test


@dataclass
class System:
    """Postgres, Redis and the service processes, all owned by this run."""

    config: HarnessConfig
    root: Path
    postgres: PostgresServer
    redis: RedisServer
    stack: Stack
    apis: list[Service] = field(default_factory=list)
    api_ports: list[int] = field(default_factory=list)
    workers: list[Service] = field(default_factory=list)
    beat: Service | None = None
    probe_session: str = ""  # where probes send while a dependency is away (left out of the audit)
    # The slow agent's model: a local OpenAI-compatible server answering after a delay (loopback only).
    slow_model: FakeOpenAI = field(default_factory=FakeOpenAI)
    stopped_on_purpose: set[int] = field(default_factory=set)  # pids a fault killed or stopped
    crashes: list[dict[str, Any]] = field(default_factory=list)  # processes that exited by themselves

    @classmethod
    def start(cls, config: HarnessConfig) -> System:
        root = config.keep_dir or scratch_dir("as-reliability-")
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # the postgres user must reach its data directory below
        postgres = PostgresServer(root / "postgres")
        redis = RedisServer(root / "redis")
        postgres.init()
        postgres.start()
        redis.start()
        (root / "logs").mkdir(exist_ok=True)
        env = {
            "DATABASE_URL": postgres.url, "REDIS_URL": redis.url, "REDIS_PREFIX": f"rel-{root.name}:",
            "CELERY_QUEUE": "rel", SLOW_MODEL_KEY_ENV: GOOD_KEY,
            # Rate limits off (the load would hit them); no effect on recovery.
            "ENVIRONMENT": "test", "REPLY_WAIT_SECONDS": str(config.reply_wait_seconds),
        }
        if not config.production_settings:
            # Recovery in seconds rather than minutes, so a short run sees it: the beat sweeps every second,
            # re-queues a `pending` message after 3 s and a `processing` one whose lease (8 s) ran out; a dead
            # worker's session lock lapses after 4 s.
            env.update({"SWEEP_INTERVAL_SECONDS": "1", "STUCK_PENDING_SECONDS": "3", "MESSAGE_LEASE_SECONDS": "8",
                        "SESSION_LOCK_SECONDS": "4"})
        system = cls(config, root, postgres, redis, Stack(env=env, log_dir=root / "logs"))
        system.migrate()
        try:
            system.slow_model.start()
            for _ in range(config.workers):
                system.start_worker()
            system.beat = system.stack.start_beat()
            for index in range(config.api_count):
                port = system.stack.port if index == 0 else free_port()
                system.api_ports.append(port)
                system.apis.append(system.stack.start_api(port))
            response = httpx.post(system.base_urls[0] + SESSIONS_PATH, json={"agentId": DEFAULT_AGENT_ID,
                                                                            "userId": PROBE_USER}, timeout=10)
            response.raise_for_status()
            system.probe_session = response.json()["sessionId"]
        except BaseException:
            print(system.logs(), file=sys.stderr)
            system.stop()
            raise
        return system

    def supervise(self, clock: Callable[[], float]) -> None:
        """What systemd's or compose's `restart:` does: a worker or beat that exited by itself is noted and
        started again."""
        for service in [*self.workers, *([self.beat] if self.beat else [])]:
            pid = service.process.pid
            if service.process.poll() is None or pid in self.stopped_on_purpose:
                continue
            self.stopped_on_purpose.add(pid)
            self.crashes.append({"service": service.name, "pid": pid, "at": round(clock(), 1),
                                 "exit_code": service.process.returncode, "log": str(service.log_path)})
            if service is self.beat:
                self.beat = self.stack.start_beat()
            else:
                self.start_worker()

    def start_worker(self) -> Service:
        # Info level: each task's receipt and end are logged with times, to read a fault's story afterwards.
        turns = () if self.config.worker_max_turns is None else ("--max-turns", str(self.config.worker_max_turns))
        worker = self.stack.start_worker(*turns, loglevel="info")
        self.workers.append(worker)
        return worker

    def migrate(self) -> None:
        subprocess.run([sys.executable, "-m", "agent_sessions.cli", "migrate"], env={**os.environ, **self.stack.env},
                       check=True, stdout=subprocess.DEVNULL)

    @property
    def base_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.api_ports]

    def live(self, services: list[Service]) -> list[Service]:
        return [service for service in services if service.process.poll() is None]

    def stop(self) -> None:
        self.stack.stop()
        self.slow_model.stop()
        self.redis.stop()
        self.postgres.stop()

    def logs(self) -> str:
        return self.stack.logs()


# ---------------------------------------------------------------------------------------------------------
# Faults: each injects, holds, then restores; the timeline records when, for the per-phase latency.


@dataclass
class FaultRecord:
    name: str
    injected_at: float
    restored_at: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)


def _wait_for_processing(system: System, timeout: float = 5.0) -> bool:
    """True once some message is being answered, so a worker fault lands mid-message."""
    engine = create_engine(system.postgres.url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.execute(text("SELECT 1 FROM messages WHERE status = 'processing' LIMIT 1")).first():
                    return True
            time.sleep(0.02)
        return False
    finally:
        engine.dispose()


def fault_worker_sigkill(system: System, record: FaultRecord, clock: Callable[[], float]) -> None:
    record.notes["mid_message"] = _wait_for_processing(system)
    victim = system.live(system.workers)[0]
    system.stopped_on_purpose.add(victim.process.pid)
    record.injected_at = clock()
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()
    time.sleep(0.5)  # a supervisor's restart delay
    system.start_worker()
    record.restored_at = clock()


def fault_worker_sigterm(system: System, record: FaultRecord, clock: Callable[[], float]) -> None:
    """Warm shutdown: the worker finishes what it holds (acks_late) and takes nothing new; a fresh one takes over."""
    record.notes["mid_message"] = _wait_for_processing(system)
    victim = system.live(system.workers)[0]
    system.stopped_on_purpose.add(victim.process.pid)
    record.injected_at = clock()
    system.start_worker()
    started = time.monotonic()
    victim.process.send_signal(signal.SIGTERM)
    try:
        victim.process.wait(30)
        record.notes["drained_in_seconds"] = round(time.monotonic() - started, 2)
        record.notes["exit_code"] = victim.process.returncode
    except Exception:  # a worker that will not drain is a finding, then killed
        record.notes["drained_in_seconds"] = None
        victim.process.kill()
        victim.process.wait()
    record.restored_at = clock()


def fault_redis_restart(system: System, record: FaultRecord, clock: Callable[[], float]) -> None:
    record.injected_at = clock()
    system.redis.stop()
    record.notes["probe"] = _probe_while_down(system, system.config.outage_seconds)
    system.redis.start()
    record.restored_at = clock()


def fault_postgres_restart(system: System, record: FaultRecord, clock: Callable[[], float]) -> None:
    record.injected_at = clock()
    system.postgres.stop(mode="immediate")
    record.notes["probe"] = _probe_while_down(system, system.config.outage_seconds)
    system.postgres.start()
    record.restored_at = clock()


def fault_api_kill(system: System, record: FaultRecord, clock: Callable[[], float]) -> None:
    """SIGKILL the first API process while clients wait on it; they retry on the other one, then it returns."""
    index = 0
    victim = system.apis[index]
    record.injected_at = clock()
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait()
    time.sleep(system.config.outage_seconds)
    system.apis[index] = system.stack.start_api(system.api_ports[index])
    record.restored_at = clock()


FAULT_ACTIONS: dict[str, Callable[[System, FaultRecord, Callable[[], float]], None]] = {
    "worker_sigkill": fault_worker_sigkill, "worker_sigterm": fault_worker_sigterm,
    "redis_restart": fault_redis_restart, "postgres_restart": fault_postgres_restart, "api_kill": fault_api_kill,
}


def _probe_while_down(system: System, seconds: float) -> dict[str, Any]:
    """Send messages (to a session left out of the audit) while a dependency is away: what does a client see?"""
    seen: Counter[str] = Counter()
    retry_after = 0
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=system.base_urls[-1], timeout=10) as client:
        while time.monotonic() < deadline:
            try:
                response = client.post(f"{SESSIONS_PATH}/{system.probe_session}/messages",
                                       json={"content": "are you there?"},
                                       headers={"Idempotency-Key": f"probe-{uuid.uuid4()}"})
                code = response.json().get("error", {}).get("code", "") if response.status_code >= 400 else ""
                seen[f"{response.status_code} {code}".strip()] += 1
                retry_after += "retry-after" in response.headers
            except httpx.HTTPError as exc:
                seen[type(exc).__name__] += 1
            time.sleep(0.25)
    return {"responses": dict(seen), "with_retry_after": retry_after}


# ---------------------------------------------------------------------------------------------------------
# Load: one coroutine per session, each message sent with its own Idempotency-Key, retried until answered.


@dataclass
class SendRecord:
    session_id: str
    key: str
    started: float
    ended: float = 0.0
    outcome: str = "pending"  # replied | accepted (202, then the reply in history) | failed | gave_up | rejected
    attempts: int = 0
    statuses: list[str] = field(default_factory=list)
    user_message_id: str | None = None
    reply_id: str | None = None
    idempotent_replay: bool = False
    slow: bool = False  # on the agent slower than the blocking wait: its latency is by design, reported apart

    @property
    def latency_ms(self) -> float:
        return (self.ended - self.started) * 1000


class LoadDriver:
    def __init__(self, config: HarnessConfig, base_urls: list[str], clock: Callable[[], float]) -> None:
        self.config = config
        self.base_urls = base_urls
        self.clock = clock
        self.records: list[SendRecord] = []
        self.sessions: list[str] = []
        self._rotation = itertools.count()
        self._random = random.Random(config.seed)

    def _url(self, hint: int) -> str:
        return self.base_urls[hint % len(self.base_urls)]

    async def run(self, agent_ids: list[str]) -> None:
        limits = httpx.Limits(max_connections=self.config.sessions * 2 + 10)
        timeout = httpx.Timeout(self.config.reply_wait_seconds + 15, connect=3)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
            await asyncio.gather(*(self._session(client, index, agent_ids[index])
                                   for index in range(self.config.sessions)))

    async def _session(self, client: httpx.AsyncClient, index: int, agent_id: str) -> None:
        session_id = await self._create_session(client, index, agent_id)
        self.sessions.append(session_id)
        # A slow session's every reply outlasts the blocking wait: a few of them make the point.
        count = min(self.config.messages_per_session, SLOW_SESSION_MESSAGES) if index < self.config.slow_sessions \
            else self.config.messages_per_session
        pause = self.config.duration / max(count, 1)
        await asyncio.sleep(self._random.uniform(0, pause))  # stagger the sessions
        for number in range(count):
            began = time.monotonic()
            await self._send(client, index + number, session_id, number, slow=index < self.config.slow_sessions)
            await asyncio.sleep(max(0.0, pause - (time.monotonic() - began)) * self._random.uniform(0.5, 1.5))

    async def _create_session(self, client: httpx.AsyncClient, index: int, agent_id: str) -> str:
        key = f"create-{uuid.uuid4()}"
        body = {"agentId": agent_id, "userId": f"load-{index}", "metadata": {"harness": True}}
        for attempt in itertools.count():
            try:
                response = await client.post(self._url(index + attempt) + SESSIONS_PATH, json=body,
                                             headers={"Idempotency-Key": key})
                if response.status_code == 201:
                    return response.json()["sessionId"]
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
        raise AssertionError("unreachable")

    async def _send(self, client: httpx.AsyncClient, hint: int, session_id: str, number: int, slow: bool) -> None:
        record = SendRecord(session_id=session_id, key=f"msg-{uuid.uuid4()}", started=self.clock(), slow=slow)
        self.records.append(record)
        body = {"content": f"{self._random.choice(LINES)} [{number}]"}
        headers = {"Idempotency-Key": record.key, "X-Debug": "true"}
        give_up = time.monotonic() + self.config.give_up_seconds
        while time.monotonic() < give_up:
            record.attempts += 1
            url = f"{self._url(hint + record.attempts - 1)}{SESSIONS_PATH}/{session_id}/messages"
            try:
                response = await client.post(url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                record.statuses.append(type(exc).__name__)
                await asyncio.sleep(0.2)
                continue
            payload = response.json()
            code = payload.get("error", {}).get("code", "") if response.status_code >= 400 else ""
            record.statuses.append(f"{response.status_code} {code}".strip())
            if response.status_code == 201:
                record.user_message_id = payload["userMessage"]["id"]
                record.reply_id = payload["id"]
                record.idempotent_replay = bool((payload.get("debug") or {}).get("idempotentReplay"))
                record.outcome = "replied"
                break
            if response.status_code == 202:
                record.user_message_id = payload["userMessage"]["id"]
                record.outcome = await self._follow(client, hint, session_id, payload["userMessage"], record, give_up)
                break
            if response.status_code in RETRYABLE_STATUSES and code != "AGENT_FAILED":
                await asyncio.sleep(min(float(response.headers.get("retry-after", "0.5")), 2.0) * 0.5)
                continue
            record.outcome = "rejected" if response.status_code < 500 else "failed"
            break
        else:
            record.outcome = "gave_up"
        record.ended = self.clock()

    async def _follow(self, client: httpx.AsyncClient, hint: int, session_id: str, user_message: dict[str, Any],
                      record: SendRecord, give_up: float) -> str:
        """After a 202, find the reply in the history (the /events stream will do this once it exists)."""
        url_path = f"{SESSIONS_PATH}/{session_id}/messages?after=seq:{user_message['seq']}&limit=100"
        for attempt in itertools.count():
            if time.monotonic() > give_up:
                return "gave_up"
            try:
                response = await client.get(self._url(hint + attempt) + url_path)
                if response.status_code == 200:
                    for message in response.json()["messages"]:
                        if message.get("replyTo") == user_message["id"]:
                            record.reply_id = message["id"]
                            return "accepted"
                    # A failed user message is not in `after`; check it directly.
                    own = await client.get(self._url(hint + attempt) + f"{SESSIONS_PATH}/{session_id}/messages"
                                           f"?after=seq:{user_message['seq'] - 1}&limit=1")
                    if own.status_code == 200 and own.json()["messages"] and \
                            own.json()["messages"][0]["status"] == "failed":
                        return "failed"
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.25)
        raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------------------
# Audit


def audit_database(database_url: str, records: list[SendRecord]) -> dict[str, Any]:
    """Every accepted user message has exactly one reply, in order; nothing stuck; every event numbered once."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        audited = f"session_id IN (SELECT id FROM sessions WHERE user_id <> '{PROBE_USER}')"
        users = conn.execute(text(
            "SELECT id, session_id, seq, status, idempotency_key, error, metadata FROM messages "
            f"WHERE role = 'user' AND {audited} ORDER BY session_id, seq")).all()
        replies = conn.execute(text(
            f"SELECT id, session_id, seq, reply_to FROM messages WHERE role = 'agent' AND {audited} "
            "ORDER BY session_id, seq")).all()
        event_gaps = conn.execute(text(
            "SELECT s.id FROM sessions s LEFT JOIN session_events e ON e.session_id = s.id GROUP BY s.id, s.event_seq "
            "HAVING COUNT(e.seq) <> s.event_seq OR COALESCE(MAX(e.seq), 0) <> s.event_seq")).all()
    engine.dispose()
    reply_by_user: dict[Any, list[Any]] = defaultdict(list)
    for reply in replies:
        reply_by_user[reply.reply_to].append(reply)
    keys = Counter(user.idempotency_key for user in users)
    client_keys = {record.key for record in records}
    user_by_key = {user.idempotency_key: user for user in users}
    answered_by: dict[Any, Any] = {}  # user message id -> the reply that answers it (coalesced turns included)
    for user in users:
        own = reply_by_user.get(user.id, [])
        coalesced_into = (user.metadata or {}).get("coalescedInto")
        if own:
            answered_by[user.id] = own[0]
        elif coalesced_into and reply_by_user.get(uuid.UUID(coalesced_into)):
            answered_by[user.id] = reply_by_user[uuid.UUID(coalesced_into)][0]
    order_violations = 0
    sessions: dict[Any, list[Any]] = defaultdict(list)
    for user in users:
        sessions[user.session_id].append(user)
    for messages in sessions.values():
        last_reply_seq = 0
        for user in messages:
            reply = answered_by.get(user.id)
            if reply is None:
                continue
            if reply.seq <= user.seq or reply.seq < last_reply_seq:
                order_violations += 1
            last_reply_seq = reply.seq
    accepted_by_client = [record for record in records if record.user_message_id is not None]
    client_mismatch = sum(1 for record in records if record.reply_id and record.user_message_id and (
        str(getattr(answered_by.get(uuid.UUID(record.user_message_id)), "id", "")) != record.reply_id))
    failed = [user for user in users if user.status == "failed"]
    result = {
        "user_messages": len(users),
        "replies": len(replies),
        "answered": len(answered_by),
        "client_sends": len(records),
        "client_confirmed": len(accepted_by_client),
        "client_gave_up": sum(record.outcome == "gave_up" for record in records),
        "duplicate_replies": sum(len(group) - 1 for group in reply_by_user.values() if len(group) > 1),
        "duplicate_user_messages": sum(count - 1 for key, count in keys.items() if key is not None and count > 1),
        "unknown_user_messages": sum(1 for key in keys if key not in client_keys),
        "lost": sum(1 for record in records if record.key not in user_by_key
                    or user_by_key[record.key].id not in answered_by),
        "failed": len(failed),
        "failed_reasons": dict(Counter((user.error or "")[:80] for user in failed)),
        "stuck": sum(user.status in ("pending", "processing") for user in users),
        "order_violations": order_violations,
        "client_reply_mismatch": client_mismatch,
        "sessions_with_event_gaps": len(event_gaps),
    }
    result["passed"] = (result["lost"] == 0 and result["duplicate_replies"] == 0 and result["failed"] == 0
                        and result["duplicate_user_messages"] == 0 and result["stuck"] == 0
                        and result["order_violations"] == 0 and result["client_reply_mismatch"] == 0
                        and result["sessions_with_event_gaps"] == 0 and result["client_gave_up"] == 0
                        and result["unknown_user_messages"] == 0)
    return result


class EventStreamAudit:
    """Reads sessions' `/events` from the start and checks every durable event arrives once, in order, and that
    resuming with `Last-Event-ID` continues right after it. Skipped (with the reason) when the server has no
    `/events` route."""

    def __init__(self, base_url: str, database_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self.database_url = database_url
        self.timeout = timeout

    def run(self, session_ids: list[str]) -> dict[str, Any]:
        if not session_ids:
            return {"status": "skipped", "reason": "no sessions"}
        expected = self._expected(session_ids)
        with httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(self.timeout, connect=3)) as client:
            try:
                with client.stream("GET", f"{SESSIONS_PATH}/{session_ids[0]}/events",
                                   headers={"Last-Event-ID": "0"}) as response:
                    if response.status_code == 404:
                        return {"status": "skipped",
                                "reason": "the server has no /events route yet (HTTP 404): stream audit not run"}
            except httpx.HTTPError as exc:
                return {"status": "failed", "reason": f"could not open /events: {exc!r}"}
            problems: list[str] = []
            for session_id in session_ids:
                last = expected[session_id]
                ids = self._read(client, session_id, "0", last)
                if ids != list(range(1, last + 1)):
                    problems.append(f"{session_id}: got {len(ids)} events, expected 1..{last} once each in order")
                    continue
                middle = last // 2
                resumed = self._read(client, session_id, str(middle), last)
                if resumed != list(range(middle + 1, last + 1)):
                    problems.append(f"{session_id}: resuming after {middle} gave {resumed[:5]}...")
        return {"status": "passed" if not problems else "failed", "sessions": len(session_ids),
                "events": sum(expected.values()), "problems": problems}

    def _expected(self, session_ids: list[str]) -> dict[str, int]:
        engine = create_engine(self.database_url)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id::text, event_seq FROM sessions")).all()
        engine.dispose()
        seqs = dict(rows)
        return {session_id: seqs[session_id] for session_id in session_ids}

    def _read(self, client: httpx.Client, session_id: str, last_event_id: str, until: int) -> list[int]:
        """Durable event seqs received (`<seq>-0` ids) until `until` or the timeout."""
        seqs: list[int] = []
        deadline = time.monotonic() + self.timeout
        try:
            with client.stream("GET", f"{SESSIONS_PATH}/{session_id}/events",
                               headers={"Last-Event-ID": last_event_id}) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        try:
                            envelope = json.loads(line[5:].strip())
                        except ValueError:
                            continue
                        seq, _, chunk = str(envelope.get("id", "")).partition("-")
                        if seq.isdigit() and chunk in ("0", ""):
                            seqs.append(int(seq))
                    if (seqs and seqs[-1] >= until) or time.monotonic() > deadline:
                        break
        except httpx.HTTPError:
            pass
        return seqs


# ---------------------------------------------------------------------------------------------------------
# Latency per phase and memory


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)


def _summary(records: list[SendRecord]) -> dict[str, Any]:
    latencies = [record.latency_ms for record in records]
    return {"count": len(records), "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99)}


def latency_by_phase(records: list[SendRecord], faults: list[FaultRecord]) -> dict[str, Any]:
    """`before` a fault: requests that ended before it was injected (and began after the previous one was
    restored); `during`: requests overlapping [injected, restored]; `after`: began after it was restored and
    before the next fault."""
    done = [record for record in records if record.ended and not record.slow]
    phases: dict[str, Any] = {"overall": _summary(done)}
    slow = [record for record in records if record.ended and record.slow]
    if slow:
        phases["slow_agent"] = {**_summary(slow),
                                "answered_202_then_reply": sum(record.outcome == "accepted" for record in slow)}
    for index, fault in enumerate(faults):
        previous_end = faults[index - 1].restored_at if index else 0.0
        next_start = faults[index + 1].injected_at if index + 1 < len(faults) else float("inf")
        phases[fault.name] = {
            "before": _summary([r for r in done if r.started >= previous_end and r.ended < fault.injected_at]),
            "during": _summary([r for r in done if r.started <= fault.restored_at and r.ended >= fault.injected_at]),
            "after": _summary([r for r in done if fault.restored_at < r.started < next_start]),
        }
    return phases


class MemorySampler:
    """RSS of every API and worker process (children included) every few seconds, on a thread."""

    def __init__(self, system: System, interval: float, clock: Callable[[], float]) -> None:
        self.system = system
        self.interval = interval
        self.clock = clock
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            sample: dict[str, Any] = {"t": round(self.clock(), 1)}
            for kind, services in (("api", self.system.apis), ("worker", self.system.workers)):
                for service in self.system.live(services):
                    sample[f"{kind}:{service.process.pid}"] = _rss_mb(service.process.pid)
            self.samples.append(sample)

    def summary(self) -> dict[str, Any]:
        series: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for sample in self.samples:
            for name, value in sample.items():
                if name != "t" and value is not None:
                    series[name].append((sample["t"], value))
        out = {}
        for name, points in series.items():
            values = [value for _, value in points]
            out[name] = {"samples": len(points), "first_mb": values[0], "max_mb": max(values), "last_mb": values[-1],
                         "trend_mb_per_min_second_half": _slope_per_minute(points[len(points) // 2:])}
        return out


def _rss_mb(pid: int) -> float | None:
    try:
        process = psutil.Process(pid)
        total = process.memory_info().rss + sum(child.memory_info().rss for child in process.children(recursive=True))
        return round(total / 2**20, 1)
    except psutil.Error:
        return None


def _slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    if len(points) < 3:
        return None
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    try:
        return round(statistics.linear_regression(xs, ys).slope * 60, 2)
    except statistics.StatisticsError:
        return None


# ---------------------------------------------------------------------------------------------------------
# A run


async def _drive(config: HarnessConfig, system: System, clock: Callable[[], float],
                 faults: list[FaultRecord]) -> LoadDriver:
    agent_ids = await _agents(system, config)
    driver = LoadDriver(config, system.base_urls, clock)
    load = asyncio.create_task(driver.run(agent_ids))
    supervisor = asyncio.create_task(_supervise(system, clock))
    timed = config.timed_faults
    for index, name in enumerate(timed):
        at = config.duration * (index + 1) / (len(timed) + 1)
        await asyncio.sleep(max(0.0, at - clock()))
        record = FaultRecord(name, injected_at=clock())
        faults.append(record)
        await asyncio.to_thread(FAULT_ACTIONS[name], system, record, clock)
    await load
    supervisor.cancel()
    return driver


async def _supervise(system: System, clock: Callable[[], float]) -> None:
    while True:
        await asyncio.to_thread(system.supervise, clock)
        await asyncio.sleep(1.0)


async def _agents(system: System, config: HarnessConfig) -> list[str]:
    """The agent of each session: ELIZA with a small per-word delay; the slow ones exceed the blocking wait."""
    async with httpx.AsyncClient(base_url=system.base_urls[0], timeout=10) as client:
        async def create(name: str, provider: str, settings: dict[str, Any]) -> str:
            response = await client.post("/api/agents", json={"name": f"{name}-{uuid.uuid4().hex[:8]}",
                                                              "provider": provider, "settings": settings})
            if response.status_code != 201:
                raise RuntimeError(f"creating the {name} agent failed: {response.status_code} {response.text}")
            return response.json()["id"]

        normal = await create("reliability", "eliza", {"chunk_delay_ms": config.chunk_delay_ms})
        slow = normal
        if config.slow_sessions:
            # A model that takes a second longer than the blocking wait, whatever the wait (ELIZA's pause per
            # word is capped at 1 s, too little for a short reply to outlast a 5 s wait).
            model = system.slow_model.add_model(f"slow-{uuid.uuid4().hex[:8]}",
                                                latency=config.reply_wait_seconds + 1.0)
            slow = await create("reliability-slow", "openai", {"model": {
                "name": model, "baseUrl": system.slow_model.base_url, "apiKeyEnv": SLOW_MODEL_KEY_ENV,
                "requestTimeoutSeconds": config.reply_wait_seconds + 30}})
    return [slow if index < config.slow_sessions else normal for index in range(config.sessions)]


def run(config: HarnessConfig) -> dict[str, Any]:
    """Start everything, drive the load with the faults, audit, stop everything; returns the report."""
    system = System.start(config)
    began = time.monotonic()

    def clock() -> float:
        return time.monotonic() - began  # seconds since the load started

    sampler = MemorySampler(system, config.memory_interval, clock)
    faults: list[FaultRecord] = []
    passed = False
    try:
        sampler.start()
        driver = asyncio.run(_drive(config, system, clock, faults))
        load_seconds = clock()
        sampler.stop()
        # Settle: every accepted message is answered eventually (the clients already waited for theirs).
        audit = _settled_audit(system, driver.records, config.settle_seconds)
        events = EventStreamAudit(system.base_urls[0], system.postgres.url).run(
            driver.sessions[: config.event_stream_sessions])
        statuses = Counter(status for record in driver.records for status in record.statuses)
        for fault in faults:
            if fault.name == "api_kill":
                fault.notes.update(_api_kill_story(driver.records, fault))
        report = {
            "config": {key: (list(value) if isinstance(value, tuple) else value)
                       for key, value in asdict(config).items() if key != "keep_dir"},
            "load_seconds": round(load_seconds, 1),
            "audit": audit,
            "event_streams": events,
            "faults": [asdict(fault) for fault in faults],
            "latency": latency_by_phase(driver.records, faults),
            "outcomes": dict(Counter(record.outcome for record in driver.records)),
            "http": dict(statuses.most_common()),
            "idempotent_replays": sum(record.idempotent_replay for record in driver.records),
            "crashes": system.crashes,
            "retried_sends": sum(record.attempts > 1 for record in driver.records),
            "memory": {"interval_seconds": config.memory_interval, "processes": sampler.summary(),
                       "samples": sampler.samples},
        }
        passed = audit["passed"] and events["status"] != "failed"
        report["passed"] = passed
        return report
    except BaseException:
        print(system.logs(), file=sys.stderr)
        raise
    finally:
        sampler.stop()
        system.stop()
        if passed and config.keep_dir is None:
            shutil.rmtree(system.root, ignore_errors=True)


def _api_kill_story(records: list[SendRecord], fault: FaultRecord) -> dict[str, int]:
    """Sends cut off by the killed API and retried (same key) on the other one: did they get the original?"""
    cut = [record for record in records if record.started <= fault.restored_at and record.ended >= fault.injected_at
           and any(status in ("RemoteProtocolError", "ReadError") for status in record.statuses)]
    return {"sends_cut_off": len(cut), "answered_after_retry": sum(record.reply_id is not None for record in cut),
            "of_which_idempotent_replays": sum(record.idempotent_replay for record in cut)}


def _settled_audit(system: System, records: list[SendRecord], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        audit = audit_database(system.postgres.url, records)
        if audit["stuck"] == 0 or time.monotonic() > deadline:
            return audit
        time.sleep(0.5)


def markdown(report: dict[str, Any]) -> str:
    """The report's headline figures as Markdown tables (what docs/reliability.md shows)."""
    audit = report["audit"]
    lines = ["| sent | replies | answered | duplicates | lost | order violations | stuck | failed |",
             "|---|---|---|---|---|---|---|---|",
             (f"| {audit['client_sends']} | {audit['replies']} | {audit['answered']} | "
              f"{audit['duplicate_replies'] + audit['duplicate_user_messages']} | {audit['lost']} | "
              f"{audit['order_violations']} | {audit['stuck']} | {audit['failed']} |"), "",
             "| phase | before p50 / p99 (n) | during p50 / p99 (n) | after p50 / p99 (n) |", "|---|---|---|---|"]

    def cell(summary: dict[str, Any]) -> str:
        if not summary["count"]:
            return "–"
        return f"{summary['p50_ms'] / 1000:.2f} s / {summary['p99_ms'] / 1000:.2f} s ({summary['count']})"

    for name, phases in report["latency"].items():
        if name in ("overall", "slow_agent"):
            continue
        lines.append(f"| {name} | {cell(phases['before'])} | {cell(phases['during'])} | {cell(phases['after'])} |")
    lines.append(f"| overall (all sends but the slow agent's) | {cell(report['latency']['overall'])} | | |")
    slow = report["latency"].get("slow_agent")
    if slow:
        lines.append(f"| slow agent (every reply outlasts the wait: 202, then the reply) | | {cell(slow)}, "
                     f"{slow['answered_202_then_reply']} answered 202 then replied | |")
    memory = report["memory"]["processes"]
    if memory:
        lines += ["", "| process | samples | first MB | max MB | last MB | trend, 2nd half (MB/min) |",
                  "|---|---|---|---|---|---|"]
        for name, figures in memory.items():
            lines.append(f"| {name} | {figures['samples']} | {figures['first_mb']} | {figures['max_mb']} | "
                         f"{figures['last_mb']} | {figures['trend_mb_per_min_second_half']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions (default 20)")
    parser.add_argument("--messages-per-session", type=int, default=15, help="messages each session sends")
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds over which each session spreads its messages; faults are spaced evenly in it")
    parser.add_argument("--faults", default="worker_sigkill,redis_restart",
                        help=f"comma-separated, in order; any of: {', '.join(FAULTS)} ('none' for none)")
    parser.add_argument("--chunk-delay-ms", type=int, default=15, help="ELIZA's delay per word")
    parser.add_argument("--slow-sessions", type=int, default=0, help="sessions on an agent slower than the wait")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker-max-turns", type=int, help="turns each worker runs at once (default: the CLI's)")
    parser.add_argument("--outage-seconds", type=float, default=3.0)
    parser.add_argument("--reply-wait-seconds", type=float, default=5.0)
    parser.add_argument("--memory-interval", type=float, default=0.0, help="seconds between RSS samples (0: off)")
    parser.add_argument("--keep-dir", type=Path, help="keep logs and data here")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--scenario", help="instead of the load with faults, run these recovery and fairness "
                                           "scenarios with production settings: worker_sigkill, redis_restart, "
                                           "fairness (comma-separated); see tests/reliability/scenarios.py")
    args = parser.parse_args(argv)
    if args.scenario:
        return _run_scenarios(args.scenario.split(","), args.report)
    faults = tuple(name for name in args.faults.split(",") if name and name != "none")
    config = HarnessConfig(sessions=args.sessions, messages_per_session=args.messages_per_session,
                           duration=args.duration, faults=faults, chunk_delay_ms=args.chunk_delay_ms,
                           slow_sessions=args.slow_sessions, workers=args.workers,
                           worker_max_turns=args.worker_max_turns, outage_seconds=args.outage_seconds,
                           reply_wait_seconds=args.reply_wait_seconds, memory_interval=args.memory_interval,
                           keep_dir=args.keep_dir)
    report = run(config)
    text_report = json.dumps(report, indent=2, default=str)
    if args.report:
        args.report.write_text(text_report)
    summary = {key: report[key] for key in ("passed", "audit", "event_streams", "faults", "crashes", "outcomes",
                                            "http")}
    print(json.dumps(summary, indent=2, default=str))
    print(markdown(report))
    return 0 if report["passed"] else 1


def _run_scenarios(names: list[str], report_path: Path | None) -> int:
    from tests.reliability.scenarios import RUNNERS, ScenarioConfig
    from tests.reliability.scenarios import markdown as scenario_markdown

    unknown = set(names) - set(RUNNERS)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(RUNNERS)}")
    results = []
    for name in names:
        results.append(RUNNERS[name](ScenarioConfig()))
        print(json.dumps({key: value for key, value in results[-1].items() if key != "per_session"}, default=str),
              flush=True)
    if report_path:
        report_path.write_text(json.dumps(results, indent=2, default=str))
    print(scenario_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
