"""The error statuses each route documents in OpenAPI (schemathesis checks every answer against them)."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec

from core.schemas import ErrorResponse

DESCRIPTIONS = {
    400: "Invalid input (body, query, path id or header)",
    401: "Missing or invalid credentials (X-API-KEY or a bearer token), when authentication is on",
    403: "The credentials do not allow this: missing scope, another user's id, or server key only",
    404: "Not found (another user's session is reported as not found)",
    409: "Conflicts with the current state (paused or busy session, taken name, concurrent request)",
    410: "The session has expired or ended",
    413: "Request body too large",
    422: "Idempotency-Key reused with a different body",
    429: "Rate limit exceeded; retry after the Retry-After header's seconds",
    501: "This server has no key to sign tokens",
    502: "The agent failed to answer",
    503: "A backing service (database, Redis) is unavailable; retry shortly",
}

# What any guarded route can answer: bad credentials, not allowed, invalid query, dependency down.
GUARDED = (400, 401, 403, 503)
WITH_BODY = (*GUARDED, 413)


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    return {status: ResponseSpec(ErrorResponse, description=DESCRIPTIONS[status], generate_examples=False)
            for status in sorted(set(statuses))}
