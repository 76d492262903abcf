from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from core import logs
from core.processing import has_unanswered_messages, process_session
from core.sweeps import sweep as run_sweep
from worker.celery_app import app
from worker.context import get_context

# Database or Redis away for a moment: try again later; the handler is idempotent.
TRANSIENT = (OperationalError, RedisConnectionError)


@app.task(name="sessions.process", autoretry_for=TRANSIENT, retry_backoff=True, retry_backoff_max=30,
          max_retries=20)
def process(session_id: str) -> int:
    logs.bind(session_id=session_id)
    context = get_context()
    settled = process_session(context, uuid.UUID(session_id))
    if context.stopping.is_set() and has_unanswered_messages(context, uuid.UUID(session_id)):
        # This worker is shutting down and stopped after the message in hand: another worker carries on
        # with the session now rather than when the sweep notices.
        process.delay(session_id)
    return settled


@app.task(name="sessions.sweep")  # no retries: the next scheduled sweep is the retry
def sweep() -> dict[str, Any]:
    return asdict(run_sweep(get_context(), lambda session_id: process.delay(str(session_id))))
