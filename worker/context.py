"""Per-process connections for tasks: built on first use, rebuilt in every forked child."""

from __future__ import annotations

import threading

import redis
from celery.signals import worker_process_init

from core.bus import EventPublisher, Keys
from core.db import create_sync_engine
from core.processing import WorkerContext
from core.settings import get_settings

_context: WorkerContext | None = None
_lock = threading.Lock()


def get_context() -> WorkerContext:
    global _context
    with _lock:
        if _context is None:
            settings = get_settings()
            client = redis.Redis.from_url(settings.redis_url, health_check_interval=30)
            keys = Keys(settings.redis_prefix)
            _context = WorkerContext(settings=settings, engine=create_sync_engine(settings), redis=client, keys=keys,
                                     publisher=EventPublisher(client, keys, settings.event_stream_maxlen,
                                                              settings.event_stream_ttl_seconds))
        return _context


@worker_process_init.connect
def _forget_parent_connections(**_: object) -> None:
    # A forked child must not reuse the parent's sockets: start from nothing.
    global _context
    _context = None
