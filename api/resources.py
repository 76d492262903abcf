"""Per-process connections of the API, opened in Litestar's lifespan (never at import)."""

from __future__ import annotations

import asyncio
import gc
import os
import time
import uuid
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aredis
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncEngine

from api.metrics import ApiMetrics
from core.bus import AsyncEventPublisher, EventHub, Keys, redis_client
from core.db import create_async_db_engine
from core.ratelimit import AuthFailures, RateLimiter
from core.runtime.runner import TurnRunner, runtime_engine
from core.services.events import EventLog
from core.sessions.uow import AsyncUnitOfWork, SessionProcessor
from core.settings import Settings
from core.streams import StreamSlots
from core.taskqueue import AsyncTaskSender


class InlineProcessor:
    """Runs turns on this process's own event loop instead of queueing tasks for workers (PROCESSING=inline:
    the benchmarks' queue-less baseline)."""

    def __init__(self, settings: Settings, client: aredis.Redis, keys: Keys) -> None:
        self.runner = TurnRunner(settings, runtime_engine(settings), client, keys, tasks=self)
        self._claiming: set[asyncio.Task[bool]] = set()

    async def process_session(self, session_id: uuid.UUID) -> None:
        task = asyncio.create_task(self.runner.process(session_id))
        self._claiming.add(task)
        task.add_done_callback(self._claiming.discard)


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    redis: aredis.Redis
    keys: Keys
    publisher: AsyncEventPublisher
    tasks: SessionProcessor
    hub: EventHub
    events: EventLog
    limiter: RateLimiter
    metrics: ApiMetrics
    started_at: float
    streams: StreamSlots  # the SSE streams and sockets this process holds, per user token and in all
    auth_failures: AuthFailures

    @classmethod
    async def open(cls, settings: Settings, metrics: ApiMetrics) -> Resources:
        if not settings.redis_url:
            raise RuntimeError("REDIS_URL is not set (`agent-sessions dev` starts an embedded Redis for you)")
        # A bounded pool: however many requests and streams are open, this process holds at most this many
        # Redis connections (the named connections show up in CLIENT LIST as this process).
        client = redis_client(settings.redis_url, max_connections=settings.api_redis_max_connections,
                              pool_wait_seconds=20, client_name=redis_client_name())
        keys = Keys(settings.redis_prefix)
        hub = EventHub(client, keys)
        engine = create_async_db_engine(settings)
        tasks: SessionProcessor = AsyncTaskSender(client, keys, settings.celery_queue)
        if settings.processing == "inline":
            tasks = InlineProcessor(settings, client, keys)
            await tasks.runner.start()
        resources = cls(settings=settings, engine=engine, redis=client, keys=keys,
                        publisher=AsyncEventPublisher(client, keys, settings.event_stream_maxlen,
                                                      settings.event_stream_ttl_seconds),
                        tasks=tasks, hub=hub, events=EventLog(client, keys, engine), metrics=metrics,
                        limiter=RateLimiter(client, keys, settings), started_at=time.monotonic(),
                        streams=StreamSlots(settings.streams_per_user, settings.streams_per_process),
                        auth_failures=AuthFailures(client, keys, settings))
        await hub.start()
        return resources

    async def close(self) -> None:
        if isinstance(self.tasks, InlineProcessor):
            await self.tasks.runner.stop(self.settings.worker_shutdown_grace_seconds)
            self.tasks.runner.engine.dispose()
        await self.hub.stop()
        await self.redis.aclose()
        await self.engine.dispose()

    def unit_of_work(self) -> AsyncUnitOfWork:
        return AsyncUnitOfWork(self.engine, self.publisher, self.tasks)


def redis_client_name(pid: int | None = None) -> str:
    return f"agent-sessions-api-{pid or os.getpid()}"


def lifespan(settings: Settings, metrics: ApiMetrics) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def open_resources(app: Litestar) -> AsyncGenerator[None]:
        app.state.resources = await Resources.open(settings, metrics)
        # What start-up allocated (modules, schemas, routes: most of the heap) lives as long as the process;
        # moved out of the collector's view, a full collection no longer rescans it. Measured with 1,000
        # open streams: full collections of 130-245 ms set the broadcast's p99.
        gc.freeze()
        try:
            yield
        finally:
            await app.state.resources.close()

    return open_resources


def provide_resources(state: State) -> Resources:
    resources: Resources = state.resources
    return resources


async def provide_uow(resources: NamedDependency[Resources]) -> AsyncGenerator[AsyncUnitOfWork]:
    """The request's transaction: committed when the handler succeeds, rolled back when it raises."""
    uow = resources.unit_of_work()
    try:
        yield uow
    except BaseException:
        await uow.rollback()
        raise
    else:
        await uow.commit()
