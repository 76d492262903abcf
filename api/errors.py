"""The one mapping from errors to HTTP responses. Every error body has the same shape."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from agent_sessions_client.codes import ERROR_CODES
from core import errors
from core.clock import isoformat, utcnow

log = logging.getLogger(__name__)

CODE_BY_STATUS = {400: "INVALID_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
                  405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 413: "REQUEST_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
                  429: "RATE_LIMIT_EXCEEDED"}
RETRY_AFTER_SECONDS = "2"


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one error shape: the nested object for ElizaOS clients, the top-level `message` for the guide."""
    return {"error": {"code": code, "message": message, "timestamp": isoformat(utcnow()), "details": details or {}},
            "message": message}


def error_response(status: int, code: str, message: str, details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Response[dict[str, Any]]:
    return Response(error_body(code, message, details), status_code=status, headers=headers)


def _status_of(exc: errors.DomainError) -> int:
    """The status the one table of error codes (shared with the client) gives the error's code."""
    entry = ERROR_CODES.get(exc.code)
    return entry.status if entry is not None and entry.status is not None else 500


def domain_error(_: Request[Any, Any, Any], exc: errors.DomainError) -> Response[dict[str, Any]]:
    status = _status_of(exc)
    headers = None
    if isinstance(exc, errors.RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    elif status == 503:
        headers = {"Retry-After": RETRY_AFTER_SECONDS}
    elif status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="agent-sessions"'}
    return error_response(status, exc.code, exc.message, exc.details, headers)


def validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    problems = exc.extra if isinstance(exc.extra, list) else []
    message = _describe(problems) or str(exc.detail) or "invalid request"
    return error_response(400, "INVALID_REQUEST", message, {"problems": problems} if problems else None)


def _describe(problems: list[Any]) -> str:
    parts = []
    for problem in problems[:3]:
        if isinstance(problem, dict):
            key = problem.get("key")
            parts.append(f"{key}: {problem.get('message')}" if key else str(problem.get("message")))
    return "; ".join(parts)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status >= 500:
        log.error("HTTP %s: %s", status, exc.detail)
    code = CODE_BY_STATUS.get(status, "INTERNAL_ERROR" if status >= 500 else "INVALID_REQUEST")
    detail = str(exc.detail)
    if isinstance(exc.__cause__, SerializationException):
        code, detail = "INVALID_JSON", f"the request body is not valid JSON ({detail})"
    return error_response(status, code, detail, None, exc.headers)


def conflict_error(_: Request[Any, Any, Any], exc: IntegrityError) -> Response[dict[str, Any]]:
    # Two requests raced for the same unique value (e.g. the same Idempotency-Key): the loser may retry.
    log.info("integrity conflict: %s", exc.orig)
    return error_response(409, "CONFLICT", "a concurrent request changed the same resource; retry", None,
                          {"Retry-After": "1"})


def unavailable_error(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.warning("dependency unavailable: %s", exc)
    return error_response(503, "SERVICE_UNAVAILABLE", "a backing service is unavailable; retry shortly",
                          None, {"Retry-After": RETRY_AFTER_SECONDS})


def internal_error(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "INTERNAL_ERROR", "internal server error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    errors.DomainError: domain_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    IntegrityError: conflict_error,
    OperationalError: unavailable_error,
    PoolTimeoutError: unavailable_error,
    RedisConnectionError: unavailable_error,
    RedisTimeoutError: unavailable_error,
    Exception: internal_error,
}
