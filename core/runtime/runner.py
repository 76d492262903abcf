"""The turn runner: claims turns and runs hundreds of them at once on one event loop.

A turn costs no thread and holds no database connection while its agent generates: it is an asyncio task
that takes a connection only to claim and to settle (two short transactions, run by a few database threads
with sync SQLAlchemy: a third less CPU per statement than its asyncio adapter, measured). CPU work (ELIZA's
matching, the conversation analysis) runs in threads too.

Sessions take turns fairly: a task answers ONE turn of its session, and when more messages wait, the
session goes to the back of the queue (a new task) instead of holding a slot until it runs dry.

A turn's messages carry a lease, renewed every third of its length while the turn runs. A worker that dies
stops renewing; every live runner looks for turns whose lease ran out about once a second and queues their
sessions again, so another worker takes them over within seconds of the death, and never while the first
worker is alive (its renewals keep the lease). A settlement is still guarded by the reply's uniqueness.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import redis.asyncio as aredis
import structlog
from redis.exceptions import RedisError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from core import logs, metrics
from core.agents import close_agent_connections
from core.agents.base import AgentFailure, AgentReply
from core.bus import Event, Keys
from core.clock import utcnow
from core.db import create_sync_engine
from core.runtime.chunks import ChunkCoalescer, ChunkStream
from core.runtime.publisher import OrderedPublisher
from core.sessions import statements as sql
from core.sessions.double_texting import SUPERSEDED_CODE, SUPERSEDED_REASON
from core.sessions.uow import SessionProcessor, UnitOfWork
from core.settings import Settings
from core.turns.claim import Turn, claim_turn
from core.turns.run import breaker_for, run_agent
from core.turns.settle import AlreadyAnswered, hand_back, store_failure, store_reply

log = structlog.get_logger(__name__)
T = TypeVar("T")
# How often `interrupt` turns look for a newer message (one query for all of them).
INTERRUPT_CHECK_SECONDS = 0.05
# Most orphaned sessions re-queued per look (the rest at the next look, a second later).
RECOVERY_BATCH = 500
# Threads running the runtime's transactions (and so its database connections): claims and settlements are
# short, so a few keep hundreds of turns going.
DATABASE_THREADS = 4
# Infrastructure errors of a turn: the turn is handed back, not failed (the message waits, nothing is lost).
INFRASTRUCTURE_ERRORS = (RedisError, SQLAlchemyError, OSError)


def _newer_pending(uow: UnitOfWork, session_ids: list[uuid.UUID]) -> Sequence[Any]:
    return uow.execute(sql.NEWER_PENDING, {"session_ids": session_ids}).all()


def runtime_engine(settings: Settings) -> Engine:
    """The runtime's database engine: one connection per database thread, no ping before each checkout (a
    connection that went stale with a Postgres restart fails its transaction, which the turn hands back)."""
    return create_sync_engine(settings, pool_pre_ping=False,
                              **({} if settings.is_sqlite else {"pool_size": DATABASE_THREADS, "max_overflow": 0}))


@dataclass(frozen=True)
class Superseded:
    """An `interrupt` session received a newer message while this turn was being answered."""

    newer_id: uuid.UUID


@dataclass(eq=False)
class RunningTurn:
    turn: Turn
    task: asyncio.Task[None] | None = None
    # Resolved with the newer message's id when an `interrupt` turn is superseded.
    superseded: asyncio.Future[uuid.UUID] | None = None
    started: float = field(default_factory=time.perf_counter)


class TurnRunner:
    """Runs turns on the current event loop, at most `settings.worker_max_turns` at once."""

    def __init__(self, settings: Settings, engine: Engine, client: aredis.Redis, keys: Keys,
                 tasks: SessionProcessor) -> None:
        self.settings = settings
        self.engine = engine
        self.redis = client
        self.keys = keys
        self.tasks = tasks
        self.publisher = OrderedPublisher(client, keys, settings.event_stream_maxlen, settings.event_stream_ttl_seconds)
        self.chunks = ChunkCoalescer(self.publisher, settings.chunk_flush_ms / 1000, settings.chunk_flush_chars)
        self.accepting = True
        self._slots: asyncio.Semaphore | None = None
        self._running: dict[uuid.UUID, RunningTurn] = {}  # by the answered user message's id
        self._claiming: set[uuid.UUID] = set()  # sessions whose claim is under way here
        self._watching = asyncio.Event()  # set while an `interrupt` turn runs
        self._background: list[asyncio.Task[None]] = []
        self._redis_run_id: str | None = None
        self._database = ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="turn-db")
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def running(self) -> int:
        return len(self._running)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._slots = asyncio.Semaphore(self.settings.worker_max_turns)
        self._background = [asyncio.create_task(coroutine, name=name) for name, coroutine in (
            ("publisher", self.publisher.run()), ("chunks", self.chunks.run()),
            ("leases", self._every(self.settings.message_lease_seconds / 3, self._renew_leases)),
            ("recovery", self._every(self.settings.recovery_interval_seconds, self._recover)),
            ("interrupts", self._watch_interrupts()),
        )]

    async def process(self, session_id: uuid.UUID, log_context: dict[str, Any] | None = None) -> bool:
        """Claim the session's next turn and start it; returns once it is claimed (True), or when there is none
        or this runner is stopping (False). Waits for a free slot first: the caller's backpressure."""
        assert self._slots is not None, "start() the runner first"
        logs.bind(**{**(log_context or {}), "session_id": session_id})
        if not self.accepting:
            return False
        await self._slots.acquire()
        self._claiming.add(session_id)
        try:
            turn = await self._transaction(lambda uow: claim_turn(uow, session_id, self.settings, utcnow()))
        except BaseException:
            self._slots.release()
            raise
        finally:
            self._claiming.discard(session_id)
        if turn is None or not self.accepting:
            self._slots.release()
            if turn is not None:  # stopping while claiming: the next worker takes it
                await self._transaction(lambda uow: hand_back(uow, turn))
            return False
        running = RunningTurn(turn)
        if turn.strategy.watches_for_newer:
            running.superseded = asyncio.get_running_loop().create_future()
            self._watching.set()
        self._running[turn.message.id] = running
        running.task = asyncio.create_task(self._run(running), name=f"turn-{turn.message.id}")
        metrics.TURNS_RUNNING.set(len(self._running))
        return True

    async def idle(self, drain_seconds: float = 5) -> None:
        """Wait until no turn runs and their events went out (for tests and benchmarks)."""
        while self._running:
            await asyncio.gather(*(running.task for running in list(self._running.values()) if running.task),
                                 return_exceptions=True)
        await self.publisher.drain(drain_seconds)

    async def stop(self, grace_seconds: float) -> None:
        """Warm shutdown: claim nothing more; let running turns finish for up to `grace_seconds`, then hand the
        rest back to the queue (pending again, their sessions queued) so another worker answers them at once."""
        self.accepting = False
        tasks = [running.task for running in self._running.values() if running.task is not None]
        if tasks:
            log.info("waiting for running turns to finish", turns=len(tasks), grace_seconds=grace_seconds)
            await asyncio.wait(tasks, timeout=grace_seconds)
        unfinished = list(self._running.values())
        for running in unfinished:
            assert running.task is not None
            running.task.cancel()
        for running in unfinished:
            with contextlib.suppress(asyncio.CancelledError):
                await cast(asyncio.Task[None], running.task)  # cancelled just above
            with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
                await self._transaction(functools.partial(hand_back, turn=running.turn))
        if unfinished:
            log.info("handed unfinished turns back", turns=len(unfinished))
        if not await self.publisher.drain(timeout=5):
            log.warning("some events were not published before shutdown; readers catch up from the database")
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await close_agent_connections()
        self._database.shutdown(wait=True)

    async def _transaction(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run `work` in one transaction in a database thread (with this task's log context); its events are
        published and its tasks sent after the commit, from the event loop."""
        return await asyncio.get_running_loop().run_in_executor(
            self._database, contextvars.copy_context().run, self._in_transaction, work)

    def _in_transaction(self, work: Callable[[UnitOfWork], T]) -> T:
        with UnitOfWork(self.engine, self, self._process_soon) as uow:
            return work(uow)

    def publish(self, events: Sequence[Event]) -> None:
        """The units of work's publisher (they commit in database threads): queued on the loop, in order."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.publisher.send, list(events))

    def _process_soon(self, session_id: uuid.UUID) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._process_later(session_id), self._loop)

    async def _process_later(self, session_id: uuid.UUID) -> None:
        try:
            await self.tasks.process_session(session_id)
        except RedisError as exc:  # the recovery queues it
            log.warning("after commit, Redis refused the task", session_id=str(session_id), error=str(exc))

    async def _run(self, running: RunningTurn) -> None:
        turn = running.turn
        logs.bind(message_id=turn.message.id)
        stream = self.chunks.stream(turn)
        follow_up = True
        try:
            outcome = await self._generate(running, stream)
            stream.close()
            agent_ms = (time.perf_counter() - running.started) * 1000
            metrics.AGENT_DURATION.labels(turn.provider).observe(agent_ms / 1000)
            if isinstance(outcome, AgentReply):
                follow_up = await self._store_reply(turn, outcome, agent_ms)
            elif isinstance(outcome, Superseded):
                await self._transaction(lambda uow: store_failure(uow, turn, SUPERSEDED_CODE, SUPERSEDED_REASON,
                                                                  utcnow(), supersededBy=str(outcome.newer_id)))
            else:
                await self._transaction(lambda uow: store_failure(uow, turn, outcome.code, outcome.reason, utcnow()))
        except INFRASTRUCTURE_ERRORS as exc:
            # The database or Redis failed under the turn: nothing is lost (the message is still unanswered);
            # hand it back so it is tried again soon, or leave it to its lease if even that fails.
            log.warning("turn interrupted by an infrastructure error; handing it back", error=repr(exc))
            with contextlib.suppress(*INFRASTRUCTURE_ERRORS):
                await self._transaction(lambda uow: hand_back(uow, turn))
            follow_up = False
        finally:
            stream.close()
            self._running.pop(turn.message.id, None)
            metrics.TURNS_RUNNING.set(len(self._running))
            assert self._slots is not None
            self._slots.release()
        if follow_up:
            # Newer messages wait: the session goes to the back of the queue rather than keeping this slot.
            # The follow-up is not the request's work: it carries no request id.
            logs.unbind("request_id")
            with contextlib.suppress(RedisError):  # lost: the recovery sweep queues it
                await self.tasks.process_session(turn.session_id)

    async def _generate(self, running: RunningTurn, stream: ChunkStream) -> AgentReply | AgentFailure | Superseded:
        turn = running.turn
        generation = asyncio.ensure_future(run_agent(turn, stream, breaker_for(turn, self.redis, self.keys),
                                                     self.settings))
        try:
            if running.superseded is None:
                return await generation
            await asyncio.wait((generation, running.superseded), return_when=asyncio.FIRST_COMPLETED)
            if generation.done():
                return generation.result()
            return Superseded(running.superseded.result())
        finally:
            if not generation.done():
                generation.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await generation

    async def _store_reply(self, turn: Turn, reply: AgentReply, agent_ms: float) -> bool:
        timings = {"queueWaitMs": round((turn.claimed_at - turn.message.created_at).total_seconds() * 1000, 2),
                   "agentMs": round(agent_ms, 2)}
        try:
            newer = await self._transaction(
                lambda uow: store_reply(uow, turn, reply, self.settings, utcnow(), timings))
        except AlreadyAnswered:
            log.info("reply already stored by another delivery of the turn", reply_id=str(turn.reply_id))
            return True  # whether more wait is unknown here: a follow-up claim finds out
        log.info("reply stored", reply_id=str(turn.reply_id), agent_ms=round(agent_ms, 2))
        return newer

    async def _every(self, seconds: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await job()
            except INFRASTRUCTURE_ERRORS as exc:  # Postgres or Redis away: try again at the next round
                log.warning("runtime maintenance failed", job=job.__name__, error=repr(exc))
            await asyncio.sleep(seconds)

    async def _renew_leases(self) -> None:
        ids = [message.id for running in self._running.values() for message in running.turn.messages]
        if ids:
            lease_until = utcnow() + self.settings.message_lease
            await self._transaction(lambda uow: uow.execute(sql.RENEW_LEASES, {"message_ids": ids,
                                                                                  "lease_until": lease_until}))

    async def _recover(self) -> None:
        """Queue again the sessions whose turn lost its worker (lease passed), and, after a Redis restart (which
        empties the task queue), every session with a waiting message."""
        restarted = await self._redis_restarted()
        statement, parameters = (sql.WAITING_SESSIONS, {"limit": RECOVERY_BATCH}) if restarted else \
            (sql.ORPHANED_SESSIONS, {"now": utcnow(), "limit": RECOVERY_BATCH})
        session_ids = await self._transaction(lambda uow: uow.execute(statement, parameters).scalars().all())
        mine = self._claiming | {running.turn.session_id for running in self._running.values()}
        quiet_ms = max(1, int(self.settings.recovery_interval_seconds * 2000))
        for session_id in session_ids:
            if session_id in mine:
                continue  # this runner is alive and on it; its lease renewal was late, not lost
            if await self.redis.set(self.keys.session_requeued(session_id), 1, nx=True, px=quiet_ms):
                await self.tasks.process_session(session_id)
                log.info("session queued again", session_id=str(session_id),
                         reason="redis restarted" if restarted else "its worker stopped renewing the lease")

    async def _redis_restarted(self) -> bool:
        run_id = (await self.redis.info("server")).get("run_id")
        restarted = self._redis_run_id is not None and run_id != self._redis_run_id
        self._redis_run_id = run_id
        return restarted

    async def _watch_interrupts(self) -> None:
        """One query every 50 ms tells every `interrupt` turn whether a newer message arrived (the database
        decides, not a Redis flag, so a Redis restart cannot hide one)."""
        while True:
            await self._watching.wait()
            watched = {running.turn.session_id: running for running in self._running.values()
                       if running.superseded is not None and not running.superseded.done()}
            if not watched:
                self._watching.clear()
                continue
            try:
                newer = await self._transaction(functools.partial(_newer_pending, session_ids=list(watched)))
            except INFRASTRUCTURE_ERRORS as exc:
                log.warning("could not look for newer messages", error=repr(exc))
                newer = []
            for row in newer:
                running = watched.get(row.session_id)
                if running is not None and row.seq > running.turn.message.seq and running.superseded is not None \
                        and not running.superseded.done():
                    running.superseded.set_result(row.id)
            await asyncio.sleep(INTERRUPT_CHECK_SECONDS)
