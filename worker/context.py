"""Per-process connections for tasks: built on first use, rebuilt in every forked child."""

from __future__ import annotations

import threading

from celery.signals import worker_process_init, worker_shutting_down

from core.processing import WorkerContext, build_context
from core.settings import get_settings

_context: WorkerContext | None = None
_lock = threading.Lock()
# Shared by every task thread of this process (the thread pool runs tasks in the worker's process).
_stopping = threading.Event()


def get_context() -> WorkerContext:
    global _context
    with _lock:
        if _context is None:
            _context = build_context(get_settings(), stopping=_stopping)
        return _context


@worker_process_init.connect
def _forget_parent_connections(**_: object) -> None:
    # A forked child must not reuse the parent's sockets: start from nothing.
    global _context
    _context = None


@worker_shutting_down.connect
def _stop_claiming(**_: object) -> None:
    # Warm shutdown: tasks in hand finish their current message and hand the session over (see tasks.py).
    _stopping.set()
