"""What users feel when something fails, measured with the settings a deployment has by default.

Each scenario starts its own system (harness `System`: Postgres, Redis, API, worker, beat; no shortened
lease, lock or sweep settings), drives sessions over HTTP, and reads the outcome from the database:

- `worker_sigkill`: SIGKILL the worker while messages are in flight, start a new one 1 s later; recovery of
  each message in flight = its reply stored - the kill.
- `redis_restart`: restart Redis under load and restart no process (no supervisor: a worker that exits
  stays dead, as under a runner without `restart:`); recovery as above, plus when the first message sent
  after the restart was answered, and whether the worker is still the same live process.
- `fairness`: N sessions each with 2 concurrent blocking senders on one worker: per session, the replies
  and the longest time without one while all are busy.

    python -m tests.reliability.harness --scenario worker_sigkill,redis_restart,fairness --report s.json

These measure whatever the runtime does; they assert nothing (the tests do, on their own scenarios).
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.reliability.harness import DEFAULT_AGENT_ID, LINES, SESSIONS_PATH, HarnessConfig, System

SCENARIOS = ("worker_sigkill", "redis_restart", "fairness")
PRODUCTION_REPLY_WAIT_SECONDS = 30.0  # REPLY_WAIT_SECONDS's default


@dataclass
class ScenarioConfig:
    sessions: int = 8  # recovery scenarios: sessions sending one message after another
    chunk_delay_ms: int = 150  # ELIZA's pause per word: a reply takes about a second, so faults land mid-message
    warm_up_seconds: float = 5.0
    recovery_bound_seconds: float = 240.0  # give up waiting for the messages in flight after this long
    redis_outage_seconds: float = 1.0  # how long Redis is down during its restart
    fairness_sessions: int = 6
    fairness_senders: int = 2  # concurrent blocking senders per session
    fairness_seconds: float = 45.0
    fairness_chunk_delay_ms: int = 50  # a reply takes a few hundred ms, like a short streamed model reply
    fairness_worker_turns: int = 4  # fewer slots than busy sessions, so the sessions must take turns


def wall_seconds(moment: datetime) -> float:
    """Epoch seconds of a database timestamp (naive ones are UTC)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


# ---------------------------------------------------------------------------------------------------------
# Load: blocking senders, one thread each, until told to stop


@dataclass
class Senders:
    base_url: str
    reply_wait_seconds: float
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # messages answered, per session

    def start(self, session_id: str, count: int = 1) -> None:
        for _ in range(count):
            thread = threading.Thread(target=self._send_loop, args=(session_id,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def halt(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(self.reply_wait_seconds + 15)

    def _send_loop(self, session_id: str) -> None:
        url = f"{SESSIONS_PATH}/{session_id}/messages"
        with httpx.Client(base_url=self.base_url, timeout=self.reply_wait_seconds + 10) as client:
            for number in range(1_000_000):
                if self.stop.is_set():
                    return
                key = f"scenario-{uuid.uuid4()}"
                body = {"content": f"{LINES[number % len(LINES)]} [{number}]"}
                while not self.stop.is_set():  # the same key until it is stored: never a second copy
                    try:
                        response = client.post(url, json=body, headers={"Idempotency-Key": key})
                    except httpx.HTTPError:
                        self.stop.wait(0.2)
                        continue
                    if response.status_code == 201:
                        break
                    if response.status_code == 202:
                        self._follow(client, session_id, response.json()["userMessage"])
                        break
                    self.stop.wait(0.5)  # 503 while a dependency is away, 409 while busy...
                self.sent[session_id] += 1

    def _follow(self, client: httpx.Client, session_id: str, user_message: dict[str, Any]) -> None:
        """After a 202: the reply comes when it comes; look for it in the history."""
        path = f"{SESSIONS_PATH}/{session_id}/messages?after=seq:{user_message['seq']}&limit=100"
        while not self.stop.wait(0.5):
            try:
                response = client.get(path)
            except httpx.HTTPError:
                continue
            if response.status_code == 200 and any(message.get("replyTo") == user_message["id"]
                                                   for message in response.json()["messages"]):
                return


def _sessions(base_url: str, agent_id: str, count: int) -> list[str]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        ids = []
        for index in range(count):
            response = client.post(SESSIONS_PATH, json={"agentId": agent_id, "userId": f"scenario-{index}"})
            response.raise_for_status()
            ids.append(response.json()["sessionId"])
        return ids


def _eliza(base_url: str, chunk_delay_ms: int) -> str:
    response = httpx.post(f"{base_url}/api/agents", timeout=10, json={
        "name": f"scenario-{uuid.uuid4().hex[:8]}", "provider": "eliza",
        "settings": {"chunk_delay_ms": chunk_delay_ms}})
    if response.status_code != 201:
        return DEFAULT_AGENT_ID
    return response.json()["id"]


# ---------------------------------------------------------------------------------------------------------
# Reading the outcome from the database


class Ledger:
    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(database_url)

    def close(self) -> None:
        self.engine.dispose()

    def in_flight(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, session_id, status FROM messages WHERE role = 'user' "
                                     "AND status IN ('pending', 'processing')")).all()
        return [{"id": row.id, "session_id": row.session_id, "status": row.status} for row in rows]

    def outcomes(self, message_ids: list[Any]) -> dict[Any, tuple[str, float | None]]:
        """Each user message's status and when its reply was stored (None while unanswered)."""
        if not message_ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT m.id, m.status, r.created_at AS replied FROM messages m "
                "LEFT JOIN messages r ON r.reply_to = m.id WHERE m.id = ANY(:ids)"), {"ids": message_ids}).all()
        return {row.id: (row.status, wall_seconds(row.replied) if row.replied else None) for row in rows}

    def replies_between(self, start: float, end: float) -> list[tuple[Any, float]]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT session_id, created_at FROM messages WHERE role = 'agent'")).all()
        moments = [(row.session_id, wall_seconds(row.created_at)) for row in rows]
        return sorted((sid, at) for sid, at in moments if start <= at <= end)

    def first_answer_to_a_message_sent_after(self, moment: float) -> float | None:
        with self.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT m.created_at AS sent, r.created_at AS replied FROM messages m "
                "JOIN messages r ON r.reply_to = m.id WHERE m.role = 'user'")).all()
        replied = [wall_seconds(row.replied) for row in rows if wall_seconds(row.sent) >= moment]
        return min(replied) if replied else None


def _recovery(ledger: Ledger, in_flight: list[dict[str, Any]], fault_at: float, bound: float,
              watch: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Wait (up to `bound` seconds after the fault) for every message in flight at the fault to be answered."""
    ids = [message["id"] for message in in_flight]
    outcomes: dict[Any, tuple[str, float | None]] = {}
    while time.time() < fault_at + bound:
        watch()
        outcomes = ledger.outcomes(ids)
        if all(status in ("completed", "failed") for status, _ in outcomes.values()):
            break
        time.sleep(0.5)
    seconds = sorted(round(replied - fault_at, 1) for _, replied in outcomes.values() if replied is not None)
    return {
        "in_flight": len(ids),
        "in_flight_processing": sum(message["status"] == "processing" for message in in_flight),
        "answered": len(seconds),
        "failed": sum(status == "failed" for status, _ in outcomes.values()),
        "unanswered_after_bound": sum(replied is None and status != "failed"
                                      for status, replied in outcomes.values()),
        "bound_seconds": bound,
        "recovery_seconds_max": seconds[-1] if seconds else None,
        "recovery_seconds_median": seconds[len(seconds) // 2] if seconds else None,
        "recovery_seconds": seconds,
    }


def _first_new_answer(ledger: Ledger, fault_at: float, back_at: float, bound: float,
                      watch: Callable[[], None] = lambda: None) -> dict[str, float | None]:
    """The senders keep sending: when (after the fault) was the first message sent after the restore answered?"""
    first = None
    while first is None and time.time() < fault_at + bound:
        watch()
        first = ledger.first_answer_to_a_message_sent_after(back_at)
        if first is None:
            time.sleep(0.5)
    return {"first_new_message_answered_after_seconds": round(first - fault_at, 1) if first else None}


# ---------------------------------------------------------------------------------------------------------
# Scenarios


def _system(config: ScenarioConfig, worker_max_turns: int | None = None) -> System:
    return System.start(HarnessConfig(sessions=0, faults=(), workers=1, worker_max_turns=worker_max_turns,
                                      reply_wait_seconds=PRODUCTION_REPLY_WAIT_SECONDS, production_settings=True))


def _warm_up(system: System, senders: Senders, ledger: Ledger, config: ScenarioConfig) -> bool:
    """Starts a sender per session, lets traffic run for the warm-up, then waits (10 s at most) for a message
    being processed, so the fault lands mid-message; says whether one was."""
    agent = _eliza(system.base_urls[0], config.chunk_delay_ms)
    for session_id in _sessions(system.base_urls[0], agent, config.sessions):
        senders.start(session_id)
    time.sleep(config.warm_up_seconds)
    return _wait_for_processing(ledger)


def _wait_for_processing(ledger: Ledger, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(message["status"] == "processing" for message in ledger.in_flight()):
            return True
        time.sleep(0.02)
    return False


def worker_sigkill(config: ScenarioConfig) -> dict[str, Any]:
    system = _system(config)
    ledger = Ledger(system.postgres.url)
    senders = Senders(system.base_urls[0], PRODUCTION_REPLY_WAIT_SECONDS)
    try:
        mid_message = _warm_up(system, senders, ledger, config)
        victim = system.workers[0]
        in_flight = ledger.in_flight()
        fault_at = time.time()
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        time.sleep(1.0)  # the new worker starts 1 s after the kill
        system.start_worker()
        back_at = time.time()
        recovery = _recovery(ledger, in_flight, fault_at, config.recovery_bound_seconds)
        return {"scenario": "worker_sigkill", "mid_message": mid_message, "new_worker_after_seconds": 1.0,
                **recovery, **_first_new_answer(ledger, fault_at, back_at, config.recovery_bound_seconds)}
    finally:
        senders.halt()
        ledger.close()
        system.stop()


def redis_restart(config: ScenarioConfig) -> dict[str, Any]:
    system = _system(config)
    ledger = Ledger(system.postgres.url)
    senders = Senders(system.base_urls[0], PRODUCTION_REPLY_WAIT_SECONDS)
    worker = system.workers[0]
    exited: dict[str, Any] = {}

    def watch_worker() -> None:
        if not exited and worker.process.poll() is not None:
            exited.update(exit_code=worker.process.returncode, after_seconds=round(time.time() - fault_at, 1))

    try:
        mid_message = _warm_up(system, senders, ledger, config)
        in_flight = ledger.in_flight()
        fault_at = time.time()
        system.redis.stop()
        time.sleep(config.redis_outage_seconds)
        system.redis.start()
        back_at = time.time()
        recovery = _recovery(ledger, in_flight, fault_at, config.recovery_bound_seconds, watch_worker)
        first_new = _first_new_answer(ledger, fault_at, back_at, config.recovery_bound_seconds, watch_worker)
        watch_worker()
        return {"scenario": "redis_restart", "mid_message": mid_message,
                "outage_seconds": round(back_at - fault_at, 1), **recovery, **first_new,
                "worker_exited": bool(exited), "worker_exit": exited or None,
                "same_worker_alive_at_end": worker.process.poll() is None}
    finally:
        senders.halt()
        ledger.close()
        system.stop()


def fairness(config: ScenarioConfig) -> dict[str, Any]:
    system = _system(config, worker_max_turns=config.fairness_worker_turns)
    ledger = Ledger(system.postgres.url)
    senders = Senders(system.base_urls[0], PRODUCTION_REPLY_WAIT_SECONDS)
    try:
        agent = _eliza(system.base_urls[0], config.fairness_chunk_delay_ms)
        sessions = _sessions(system.base_urls[0], agent, config.fairness_sessions)
        started = time.time()
        for session_id in sessions:
            senders.start(session_id, config.fairness_senders)
        time.sleep(config.fairness_seconds)
        ended = time.time()
        senders.halt()
        return {"scenario": "fairness", "sessions": config.fairness_sessions,
                "senders_per_session": config.fairness_senders, "worker_turns_at_once": config.fairness_worker_turns,
                **fairness_figures(ledger.replies_between(started, ended), sessions, started, ended)}
    finally:
        senders.halt()
        ledger.close()
        system.stop()


def fairness_figures(replies: list[tuple[Any, float]], sessions: list[str], start: float,
                     end: float) -> dict[str, Any]:
    """Per session: replies in [start, end] and the longest stretch of it without one."""
    moments: dict[str, list[float]] = {session_id: [] for session_id in sessions}
    for session_id, at in replies:
        moments.setdefault(str(session_id), []).append(at)
    per_session = []
    for session_id in sessions:
        points = [start, *sorted(moments[session_id]), end]  # the history gives them newest first
        per_session.append({"session": session_id, "replies": len(moments[session_id]),
                            "longest_gap_seconds": round(max(b - a for a, b in itertools.pairwise(points)), 2)})
    counts = [entry["replies"] for entry in per_session]
    return {"window_seconds": round(end - start, 1), "replies": sum(counts),
            "sessions_without_reply": sum(count == 0 for count in counts),
            "replies_min": min(counts), "replies_max": max(counts),
            "longest_gap_seconds": max(entry["longest_gap_seconds"] for entry in per_session),
            "per_session": per_session}


RUNNERS: dict[str, Callable[[ScenarioConfig], dict[str, Any]]] = {
    "worker_sigkill": worker_sigkill, "redis_restart": redis_restart, "fairness": fairness}


def markdown(results: list[dict[str, Any]]) -> str:
    lines = []
    recoveries = [result for result in results if result["scenario"] != "fairness"]
    if recoveries:
        lines += [("| fault | in flight (processing) | answered | recovery max / median | unanswered after bound | "
                   "first message sent after it answered | worker |"), "|---|---|---|---|---|---|---|"]
        for result in recoveries:
            first_new = result.get("first_new_message_answered_after_seconds")
            if result["scenario"] == "worker_sigkill":
                worker = "new one started 1 s after the kill"
            elif result["worker_exited"]:
                worker = "exited by itself, code {exit_code}, {after_seconds} s after the fault".format(
                    **result["worker_exit"])
            else:
                worker = "same process, alive"
            lines.append(
                f"| {result['scenario']} | {result['in_flight']} ({result['in_flight_processing']}) | "
                f"{result['answered']} | {result['recovery_seconds_max']} s / {result['recovery_seconds_median']} s | "
                f"{result['unanswered_after_bound']} (bound {result['bound_seconds']:.0f} s) | "
                f"{'–' if first_new is None else f'{first_new} s'} | {worker} |")
    for result in results:
        if result["scenario"] == "fairness":
            lines += ["", (f"Fairness: {result['sessions']} sessions × {result['senders_per_session']} blocking "
                           f"senders, one worker running {result['worker_turns_at_once']} turns at once, "
                           f"{result['window_seconds']} s:"), "",
                      "| session | replies | longest gap without a reply |", "|---|---|---|"]
            lines += [f"| {index + 1} | {entry['replies']} | {entry['longest_gap_seconds']} s |"
                      for index, entry in enumerate(result["per_session"])]
    return "\n".join(lines)
