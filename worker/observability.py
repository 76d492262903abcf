"""Worker logging: structlog configured when Celery sets up logging, and each task's context bound to its lines."""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.signals import setup_logging, task_postrun, task_prerun

from core import logs
from core.logs import REQUEST_ID_HEADER
from core.settings import get_settings


@setup_logging.connect
def _configure_logging(loglevel: str | int | None = None, **_: Any) -> None:
    # A receiver on this signal stops Celery from installing its own handlers: ours render every line.
    logs.configure_logging(get_settings(), loglevel)


@task_prerun.connect
def _bind_task_context(task_id: str, task: Task, **_: Any) -> None:
    # Pool threads are reused: start each task from a clean context.
    logs.clear()
    logs.bind(task_id=task_id, task=task.name, request_id=getattr(task.request, REQUEST_ID_HEADER, None))


@task_postrun.connect
def _clear_task_context(**_: Any) -> None:
    logs.clear()
