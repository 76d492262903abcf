"""The worker's handler: answer a session's pending user messages, in order, exactly once each.

Plain synchronous code (sync SQLAlchemy, sync redis), called by the Celery task and by tests alike.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import redis
import structlog
from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.dialects import postgresql, sqlite

from core import logs, metrics
from core.agents import REMOTE_PROVIDERS, build_agent
from core.agents.base import AgentContext, AgentFailure, AgentReply, HistoryItem
from core.agents.character import CircuitBreakerSettings
from core.analysis import analyze_exchange, public_state
from core.breaker import CircuitBreaker
from core.bus import Event, EventPublisher, Keys
from core.clock import utcnow
from core.db import create_sync_engine
from core.locks import SessionLock
from core.models import UNANSWERED, agents_table, events_table, messages_table, sessions_table
from core.services.messages import message_public
from core.services.sessions import public_json, session_status
from core.settings import Settings

log = structlog.get_logger(__name__)
M = messages_table.c
S = sessions_table.c
# A message whose processing killed its worker this many times is failed rather than retried forever.
MAX_DELIVERIES = 5
# How often an `interrupt` session's generation looks for a newer message (between chunks, at most this often).
INTERRUPT_CHECK_SECONDS = 0.05

# The hot path's statements, built once: building a statement and its cache key on every call cost as much
# CPU as executing it (about 50-100 us each, measured). Parameters are passed at execution.
_UNANSWERED = select(messages_table).where(
    M.session_id == bindparam("session_id"), UNANSWERED,
).order_by(M.seq)
_OLDEST_UNANSWERED = _UNANSWERED.limit(1)
_SESSION_AND_AGENT = select(
    sessions_table, agents_table.c.provider, agents_table.c.name.label("agent_name"),
    agents_table.c.settings.label("agent_settings"),
).join(agents_table, agents_table.c.id == S.agent_id).where(S.id == bindparam("session_id"))
_CLAIM = update(messages_table).where(M.id.in_(bindparam("message_ids", expanding=True))).values(
    status="processing", lease_until=bindparam("lease_until"), attempts=M.attempts + 1)
_HISTORY = select(M.role, M.content).where(
    M.session_id == bindparam("session_id"), M.seq < bindparam("before_seq"), M.status == "completed",
).order_by(M.seq.desc()).limit(bindparam("window"))
_LOCK_SESSION = select(sessions_table).where(S.id == bindparam("session_id")).with_for_update()
# SET clauses come from the execution's parameters (column names); the row is named by `message_id`.
_SETTLE_MESSAGE = update(messages_table).where(M.id == bindparam("message_id"))
_UPDATE_SESSION = update(sessions_table).where(S.id == bindparam("session_id")).returning(sessions_table)
_STORE_REPLY = {  # insert unless a reply to this message exists: True (a row) if this call stored it
    name: dialect.insert(messages_table).on_conflict_do_nothing(index_elements=["reply_to"]).returning(M.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    keys: Keys
    publisher: EventPublisher
    # Set when the worker begins a warm shutdown: finish the message in hand, claim no new one.
    stopping: threading.Event = field(default_factory=threading.Event)


def build_context(settings: Settings, stopping: threading.Event | None = None) -> WorkerContext:
    """Connections for the handler (pools are created lazily, on first use)."""
    client = redis.Redis.from_url(settings.redis_url, health_check_interval=30)
    keys = Keys(settings.redis_prefix)
    # No ping before each checkout (a round trip per transaction): a connection that went stale with a
    # Postgres restart fails its task with OperationalError, which the task retries on a fresh pool.
    engine = create_sync_engine(settings, pool_pre_ping=False)
    return WorkerContext(settings=settings, engine=engine, redis=client, keys=keys,
                         publisher=EventPublisher(client, keys, settings.event_stream_maxlen,
                                                  settings.event_stream_ttl_seconds),
                         stopping=stopping or threading.Event())


@dataclass(frozen=True)
class Job:
    """One claimed user message with everything the agent needs."""

    message: Any
    session: Any
    provider: str
    agent_name: str
    agent_settings: dict[str, Any]
    history: tuple[HistoryItem, ...]
    claimed_at: datetime
    coalesced: tuple[Any, ...] = ()  # earlier messages answered in the same turn (`coalesce` sessions)

    @property
    def strategy(self) -> str:
        return self.session.double_texting

    @property
    def prompt(self) -> str:
        """What the agent answers: the message, or the whole burst of a coalesced turn, one per line."""
        return "\n".join(message.content for message in (*self.coalesced, self.message))


class Superseded(Exception):
    """An `interrupt` session received a newer message while this one was being answered."""

    def __init__(self, newer_id: uuid.UUID) -> None:
        super().__init__(str(newer_id))
        self.newer_id = newer_id


def process_session(ctx: WorkerContext, session_id: uuid.UUID) -> int:
    """Answer every pending message of the session; returns how many were settled.

    One worker at a time holds the session's lock. A worker that finds it taken leaves a "rerun" mark
    before trying once more, and the holder checks the mark after releasing, so a message committed
    while the holder was finishing is never left behind.
    """
    settled = 0
    rerun_key = ctx.keys.session_rerun(session_id)
    while True:
        lock = SessionLock(ctx.redis, ctx.keys.session_lock(session_id), ctx.settings.session_lock_seconds)
        if not lock.acquire():
            ctx.redis.set(rerun_key, 1, ex=60)
            if not lock.acquire():
                return settled
        try:
            settled += _drain(ctx, session_id, lock)
        finally:
            # A stopping worker leaves the rest (and any rerun mark) to the next one.
            rerun = lock.release(rerun_key=None if ctx.stopping.is_set() else rerun_key)
        if not rerun:
            return settled


def has_unanswered_messages(ctx: WorkerContext, session_id: uuid.UUID) -> bool:
    with ctx.engine.connect() as conn:
        return conn.execute(select(M.id).where(
            M.session_id == session_id, UNANSWERED).limit(1),
        ).first() is not None


def _drain(ctx: WorkerContext, session_id: uuid.UUID, lock: SessionLock) -> int:
    settled = 0
    while not lock.lost and not ctx.stopping.is_set():
        job = _claim_next(ctx, session_id)
        if job is None:
            return settled
        settled += 1
        if not _settle(ctx, job):
            # Nothing newer than this turn: a message committed from now on finds the lock still held and
            # leaves a rerun mark, so no need to look again (one transaction less per message).
            return settled
    return settled


def _settle(ctx: WorkerContext, job: Job) -> bool:
    """Answer the claimed turn, or fail it; False when the session is known to have no newer message."""
    logs.bind(message_id=job.message.id)
    if job.session.status not in ("active", "paused"):
        _store_failure(ctx, job, "SESSION_CLOSED", "the session closed before this message was answered")
    elif job.message.attempts >= MAX_DELIVERIES:
        _store_failure(ctx, job, "DELIVERY_FAILED", f"processing was interrupted {MAX_DELIVERIES} times")
    else:
        started = time.perf_counter()
        outcome = _run_agent(ctx, job)
        agent_ms = (time.perf_counter() - started) * 1000
        metrics.AGENT_DURATION.labels(job.provider).observe(agent_ms / 1000)
        if isinstance(outcome, AgentReply):
            return _store_reply(ctx, job, outcome, agent_ms)
        if isinstance(outcome, Superseded):
            _store_superseded(ctx, job, job.message, outcome.newer_id)
        else:
            _store_failure(ctx, job, outcome.code, outcome.reason)
    return True


def _claim_next(ctx: WorkerContext, session_id: uuid.UUID) -> Job | None:
    """Mark the oldest unanswered user message `processing` (with a lease) and load its context.

    Holding the session lock means any `processing` message here was left by a worker that died.
    """
    now = utcnow()
    this_session = {"session_id": session_id}
    with ctx.engine.begin() as conn:
        waiting = conn.execute(_OLDEST_UNANSWERED, this_session).all()
        if not waiting:
            return None
        session = conn.execute(_SESSION_AND_AGENT, this_session).one()
        if session.double_texting in ("coalesce", "interrupt"):  # only these look past the oldest message
            waiting = conn.execute(_UNANSWERED, this_session).all()
        agent_settings = session.agent_settings or {}
        # enqueue / reject: the oldest, alone. interrupt: the newest (the older ones are superseded below).
        # coalesce: all of them, as one turn answered after the newest.
        claimed = waiting if session.double_texting == "coalesce" else \
            waiting[-1:] if session.double_texting == "interrupt" else waiting[:1]
        conn.execute(_CLAIM, {"message_ids": [message.id for message in claimed],
                              "lease_until": now + timedelta(seconds=ctx.settings.message_lease_seconds)})
        earlier = conn.execute(_HISTORY, {**this_session, "before_seq": claimed[0].seq,
                                          "window": _history_window(ctx.settings, agent_settings)}).all()
    history = tuple(HistoryItem(role=row.role, content=row.content) for row in reversed(earlier))
    for message in claimed:
        if message.status == "pending":  # a first claim: how long it queued
            metrics.QUEUE_WAIT.observe(max(0.0, (now - message.created_at).total_seconds()))
    job = Job(message=claimed[-1], session=session, provider=session.provider, agent_name=session.agent_name,
              agent_settings=agent_settings, history=history, claimed_at=now, coalesced=tuple(claimed[:-1]))
    if session.double_texting == "interrupt":
        for older in waiting[:-1]:
            _store_superseded(ctx, job, older, job.message.id)
    return job


def _history_window(settings: Settings, agent_settings: dict[str, Any]) -> int:
    wanted = agent_settings.get("historyMessages")
    return wanted if isinstance(wanted, int) and wanted > 0 else settings.history_window


def _breaker(ctx: WorkerContext, job: Job) -> CircuitBreaker | None:
    if job.provider not in REMOTE_PROVIDERS:
        return None
    model = job.agent_settings.get("model") or {}
    try:
        config = CircuitBreakerSettings.model_validate(model.get("circuitBreaker") or {})
        trial_seconds = float(model.get("requestTimeoutSeconds") or 60) + 5
    except ValueError:
        config, trial_seconds = CircuitBreakerSettings(), 65.0
    return CircuitBreaker(ctx.redis, ctx.keys, job.session.agent_id, failure_threshold=config.failure_threshold,
                          cooldown_seconds=config.cooldown_seconds, trial_seconds=trial_seconds)


def _run_agent(ctx: WorkerContext, job: Job) -> AgentReply | Superseded | AgentFailure:
    """The agent's final reply, streaming its chunks as it goes; or why it failed.

    The one place agent calls are retried: transient failures, with exponential backoff, each attempt
    passing through the agent's circuit breaker (if it calls out), which fails fast while open.
    """
    state = public_state(job.session.state or None)
    context = AgentContext(
        session_id=str(job.session.id), user_id=job.session.user_id, message=job.prompt,
        history=job.history, settings=job.agent_settings, preferences=state.get("preferences", {}),
        conversation=state, agent_state=job.session.agent_state or {}, agent_name=job.agent_name,
    )
    reply_id = _reply_id(job)
    breaker = _breaker(ctx, job)
    for attempt in range(1, ctx.settings.agent_attempts + 1):
        try:
            if breaker:
                breaker.before_call()
            reply = _stream(ctx, job, context, reply_id)
            if breaker:
                breaker.record_success()
            return reply
        except Superseded as superseded:
            return superseded
        except AgentFailure as failure:
            if failure.transient and breaker:
                breaker.record_failure(failure.reason)
            if not failure.transient or attempt == ctx.settings.agent_attempts:
                return failure
            log.warning("agent failed, retrying", attempt=attempt, reason=failure.reason)
            time.sleep(ctx.settings.agent_retry_backoff_seconds * 2 ** (attempt - 1))
        except (redis.RedisError, SQLAlchemyError):
            raise  # our infrastructure, not the agent (breaker state, chunks): the task retries, the message waits
        except Exception as exc:  # a bug in an agent must fail one message, not the worker
            log.exception("agent crashed")
            return AgentFailure(f"the agent raised {type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")


def _reply_id(job: Job) -> uuid.UUID:
    # Derived from the user message, so chunks of a retried generation name the same reply.
    return uuid.uuid5(job.message.id, "reply")


def _stream(ctx: WorkerContext, job: Job, context: AgentContext, reply_id: uuid.UUID) -> AgentReply:
    final: AgentReply | None = None
    index = 0
    next_check = 0.0
    for item in build_agent(job.provider, job.agent_settings).run(context):
        if job.strategy == "interrupt" and (isinstance(item, AgentReply) or time.monotonic() >= next_check):
            _raise_if_superseded(ctx, job)
            next_check = time.monotonic() + INTERRUPT_CHECK_SECONDS
        if isinstance(item, AgentReply):
            final = item
            continue
        index += 1
        ctx.publisher.publish([Event(
            session_id=job.session.id, seq=job.session.event_seq, chunk=index, type="message.chunk",
            data={"messageId": str(reply_id), "replyTo": str(job.message.id), "index": index, "delta": item},
        )])
    if final is None:
        raise AgentFailure("the agent finished without a reply")
    return final


def _raise_if_superseded(ctx: WorkerContext, job: Job) -> None:
    # A cheap indexed read; the database (not a Redis flag) decides, so a Redis restart cannot hide it.
    with ctx.engine.connect() as conn:
        newer = conn.execute(select(M.id).where(
            M.session_id == job.session.id, UNANSWERED, M.seq > job.message.seq, M.status == "pending",
        ).limit(1)).first()
    if newer is not None:
        raise Superseded(newer.id)


def _store_reply(ctx: WorkerContext, job: Job, reply: AgentReply, agent_ms: float) -> bool:
    """Store the reply and settle the turn; True if the session has newer messages than the one answered."""
    started = time.perf_counter()
    now = utcnow()
    user = job.message
    with ctx.engine.begin() as conn:
        session = conn.execute(_LOCK_SESSION, {"session_id": job.session.id}).one()
        state, analysis = analyze_exchange(session.state or None, job.prompt, reply.text, reply.confidence,
                                           user.created_at, user.metadata)
        metadata = {"thought": reply.thought, "actions": list(reply.actions), "confidence": reply.confidence,
                    "analysis": analysis}
        coalesced = [str(earlier.id) for earlier in job.coalesced]
        if coalesced:
            metadata["coalesced"] = coalesced
        values = {"id": _reply_id(job), "session_id": session.id, "seq": session.next_seq + 1, "role": "agent",
                  "author_id": str(session.agent_id), "content": reply.text, "metadata": metadata,
                  "status": "completed", "reply_to": user.id, "created_at": now, "completed_at": now, "attempts": 1}
        newer_waiting = session.next_seq > user.seq
        if conn.execute(_STORE_REPLY[conn.dialect.name], values).first() is None:
            conn.rollback()  # another delivery already answered it
            return True
        settled = {"status": "completed", "completed_at": now, "lease_until": None, "error": None}
        conn.execute(_SETTLE_MESSAGE, {**settled, "message_id": user.id,
                                       "metadata": {**user.metadata, "analysis": analysis}})
        for earlier in job.coalesced:  # answered by this turn's reply, which names them in `coalesced`
            conn.execute(_SETTLE_MESSAGE, {**settled, "message_id": earlier.id,
                                           "metadata": {**earlier.metadata, "coalescedInto": str(user.id)}})
        updated = conn.execute(_UPDATE_SESSION, {
            "session_id": session.id, "next_seq": values["seq"], "event_seq": session.event_seq + 2,
            "message_count": session.message_count + 1, "state": state, "agent_state": reply.agent_state}).one()
        db_ms = (time.perf_counter() - started) * 1000
        reply_public = public_json(message_public(SimpleNamespace(**values, error=None)))
        status = public_json(session_status(updated, now, ctx.settings.timeout_minute))
        events = [
            Event(session_id=session.id, seq=session.event_seq + 1, type="message.completed", created_at=now, data={
                "message": reply_public, "replyTo": str(user.id), "coalesced": coalesced, "sessionStatus": status,
                "timings": {"queueWaitMs": round((job.claimed_at - user.created_at).total_seconds() * 1000, 2),
                            "agentMs": round(agent_ms, 2), "dbMs": round(db_ms, 2)},
            }),
            Event(session_id=session.id, seq=session.event_seq + 2, type="state.updated", created_at=now,
                  data={"state": status["state"], "messageId": str(user.id)}),
        ]
        conn.execute(insert(events_table), [event.row() for event in events])
    ctx.publisher.publish(events)
    log.info("reply stored", reply_id=str(values["id"]), agent_ms=round(agent_ms, 2), db_ms=round(db_ms, 2))
    return newer_waiting


def _store_superseded(ctx: WorkerContext, job: Job, message: Any, newer_id: uuid.UUID) -> None:
    _store_failure(ctx, job, "SUPERSEDED", "a newer message arrived before this one was answered (interrupt)",
                   messages=(message,), supersededBy=str(newer_id))


def _store_failure(ctx: WorkerContext, job: Job, code: str, reason: str, messages: tuple[Any, ...] = (),
                   **details: str) -> None:
    """Mark the turn's messages (or the given ones) failed, each with a `message.failed` event.

    The code is kept in the message's metadata (`errorCode`, plus any details such as `supersededBy`) so a
    client reading the history, or retrying with its Idempotency-Key, learns why.
    """
    now = utcnow()
    events = []
    with ctx.engine.begin() as conn:
        session = conn.execute(select(sessions_table).where(S.id == job.session.id).with_for_update()).one()
        seq = session.event_seq
        for message in messages or (*job.coalesced, job.message):
            changed = conn.execute(update(messages_table).where(
                M.id == message.id, M.status.in_(("pending", "processing"))).values(
                status="failed", error=reason, lease_until=None, completed_at=now,
                metadata={**message.metadata, "errorCode": code, **details})).rowcount
            if not changed:
                continue
            seq += 1
            events.append(Event(session_id=session.id, seq=seq, type="message.failed", created_at=now, data={
                "messageId": str(message.id), "replyTo": str(message.id),
                "error": {"code": code, "message": reason, **details}}))
        if not events:
            return
        conn.execute(update(sessions_table).where(S.id == session.id).values(event_seq=seq))
        conn.execute(insert(events_table), [event.row() for event in events])
    ctx.publisher.publish(events)
    metrics.MESSAGE_FAILURES.labels(code).inc(len(events))
    log.warning("message failed", code=code, reason=reason, messages=len(events))
