"""Worker logs and metrics: structlog configured when Celery sets up logging, each task's context bound to
its log lines, task timings/retries/failures counted, and the metrics server started when the worker is ready."""

from __future__ import annotations

import logging
import time
from typing import Any

import structlog
from celery import Task
from celery.signals import setup_logging, task_failure, task_postrun, task_prerun, task_retry, worker_ready

from core import logs, metrics
from core.logs import REQUEST_ID_HEADER
from core.settings import get_settings

log = structlog.get_logger(__name__)
_started: dict[str, float] = {}  # task id -> perf_counter at start


@setup_logging.connect
def _configure_logging(loglevel: str | int | None = None, **_: Any) -> None:
    # A receiver on this signal stops Celery from installing its own handlers: ours render every line.
    logs.configure_logging(get_settings(), loglevel)
    # Celery's own "received"/"succeeded" lines, two per task, cost more CPU than the task's Redis calls;
    # our "reply stored" line carries the same ids with the timings, and retries are logged below.
    for name in ("celery.app.trace", "celery.worker.strategy"):
        logging.getLogger(name).setLevel(logging.WARNING)


@worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    settings = get_settings()
    if settings.worker_metrics_port:
        metrics.serve_worker_metrics(settings.worker_metrics_port, settings.worker_metrics_host)


@task_prerun.connect
def _task_started(task_id: str, task: Task[Any, Any], **_: Any) -> None:
    _started[task_id] = time.perf_counter()
    # Pool threads are reused: start each task from a clean context.
    logs.clear()
    logs.bind(task_id=task_id, task=task.name, request_id=getattr(task.request, REQUEST_ID_HEADER, None))


@task_postrun.connect
def _task_finished(task_id: str, task: Task[Any, Any], state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    if started is not None:
        metrics.TASK_DURATION.labels(task.name, state or "UNKNOWN").observe(time.perf_counter() - started)
    logs.clear()


@task_retry.connect
def _task_retried(sender: Task[Any, Any] | None = None, reason: object = None, **_: Any) -> None:
    metrics.TASK_RETRIES.labels(getattr(sender, "name", "unknown")).inc()
    log.warning("task retried", reason=str(reason))


@task_failure.connect
def _task_failed(sender: Task[Any, Any] | None = None, **_: Any) -> None:
    metrics.TASK_FAILURES.labels(getattr(sender, "name", "unknown")).inc()
