"""Structured logs (structlog): JSON lines in production, readable colours in dev.

Configured once per process (API, worker, beat, CLI). Every log line, ours or a library's through the
standard `logging` module, carries the context bound with structlog's contextvars: the HTTP request id,
the Celery task id, the session and message ids. The API hands its request id to the worker as a task
header (`REQUEST_ID_HEADER`), so a worker line names the request that caused it.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from typing import Any

import structlog

from core.settings import Settings

REQUEST_ID_HEADER = "request_id"  # the Celery task header carrying the API's request id
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_configured = False


def log_format(settings: Settings) -> str:
    if settings.log_format != "auto":
        return settings.log_format
    return "console" if settings.environment in ("dev", "development", "local") else "json"


def configure_logging(settings: Settings, level: str | int | None = None) -> None:
    """Route structlog and standard logging through one renderer; later calls in the process do nothing."""
    global _configured
    if _configured:
        return
    _configured = True
    level = level or settings.log_level
    if isinstance(level, str):
        level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if log_format(settings) == "json":
        renderer: Any = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def accepted_request_id(header: str | None) -> str:
    """The caller's X-Request-ID when it is a sane token, else a new one."""
    if header and _REQUEST_ID_PATTERN.match(header):
        return header
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")


def bind(**values: Any) -> None:
    structlog.contextvars.bind_contextvars(**{key: str(value) for key, value in values.items() if value is not None})


def unbind(*names: str) -> None:
    structlog.contextvars.unbind_contextvars(*names)


def snapshot() -> dict[str, Any]:
    """The bound context, to carry into work that runs elsewhere (another thread's event loop)."""
    return structlog.contextvars.get_contextvars()


def clear() -> None:
    structlog.contextvars.clear_contextvars()
