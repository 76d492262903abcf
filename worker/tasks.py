from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from core import logs
from core.sweeps import sweep as run_sweep
from worker.celery_app import app
from worker.runtime import get_beat_context, get_runtime

# Database or Redis away for a moment: try again later; the handler is idempotent.
TRANSIENT = (OperationalError, RedisConnectionError)


@app.task(name="sessions.process", autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=30,
          max_retries=20)
def process(session_id: str) -> bool:
    """Start the session's next turn on this process's runtime (it runs on after the task returns)."""
    logs.bind(session_id=session_id)
    runtime = get_runtime()
    started = runtime.process(uuid.UUID(session_id), logs.snapshot())
    if not started and runtime.stopping:
        # This worker is shutting down: another worker carries on with the session now, not at the next sweep.
        process.delay(session_id)
    return started


@app.task(name="sessions.sweep")  # no retries: the next scheduled sweep is the retry
def sweep() -> dict[str, Any]:
    return asdict(run_sweep(get_beat_context(), lambda session_id: process.delay(str(session_id))))
