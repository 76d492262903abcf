"""Per-process connections of the API, opened in Litestar's lifespan (never at import)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aredis
from litestar import Litestar
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncEngine

from api.metrics import ApiMetrics
from core.bus import AsyncEventPublisher, EventHub, Keys
from core.db import create_async_db_engine
from core.settings import Settings
from core.taskqueue import AsyncTaskSender
from core.uow import AsyncUnitOfWork


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    redis: aredis.Redis
    keys: Keys
    publisher: AsyncEventPublisher
    tasks: AsyncTaskSender
    hub: EventHub
    metrics: ApiMetrics
    started_at: float

    @classmethod
    async def open(cls, settings: Settings, metrics: ApiMetrics) -> Resources:
        if not settings.redis_url:
            raise RuntimeError("REDIS_URL is not set (`agent-sessions dev` starts an embedded Redis for you)")
        client = aredis.Redis.from_url(settings.redis_url, health_check_interval=30)
        keys = Keys(settings.redis_prefix)
        hub = EventHub(client, keys)
        resources = cls(settings=settings, engine=create_async_db_engine(settings), redis=client, keys=keys,
                        publisher=AsyncEventPublisher(client, keys, settings.event_stream_maxlen),
                        tasks=AsyncTaskSender(client, keys, settings.celery_queue), hub=hub,
                        metrics=metrics, started_at=time.monotonic())
        await hub.start()
        return resources

    async def close(self) -> None:
        await self.hub.stop()
        await self.redis.aclose()
        await self.engine.dispose()

    def unit_of_work(self) -> AsyncUnitOfWork:
        return AsyncUnitOfWork(self.engine, self.publisher, self.tasks)


def lifespan(settings: Settings, metrics: ApiMetrics):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def open_resources(app: Litestar) -> AsyncGenerator[None]:
        app.state.resources = await Resources.open(settings, metrics)
        try:
            yield
        finally:
            await app.state.resources.close()

    return open_resources


def provide_resources(state: State) -> Resources:
    return state.resources


async def provide_uow(resources: Resources) -> AsyncGenerator[AsyncUnitOfWork]:
    """The request's transaction: committed when the handler succeeds, rolled back when it raises."""
    uow = resources.unit_of_work()
    try:
        yield uow
    except BaseException:
        await uow.rollback()
        raise
    else:
        await uow.commit()
