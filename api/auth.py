"""The HTTP side of authentication: a guard that turns request headers into a `Principal`.

Every route under /api is guarded; what a route needs is its `opt["access"]`:
`read` (default: scope sessions:read), `write` (scope sessions:write), `admin` (the server key only),
`any` (any valid credentials) and `health` (open when PUBLIC_HEALTH). The OpenAPI documents are open
when PUBLIC_DOCS. Other paths (a same-origin chat page, socket.io) authenticate themselves.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from core.auth import READ, WRITE, Principal, authenticate
from core.errors import Unauthorized
from core.settings import Settings

SCOPE_OF_ACCESS = {"read": READ, "write": WRITE}
API_PREFIX = "/api"


async def authorize(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    # async although it awaits nothing: Litestar runs a sync guard in a worker thread, a hop per request.
    settings = connection.app.state.resources.settings
    path = connection.scope["path"]
    docs_path = connection.app.openapi_config.path if connection.app.openapi_config else None
    if docs_path and path.startswith(docs_path):
        if not settings.public_docs:
            await _authenticate(connection, settings)
        return
    if not (path == API_PREFIX or path.startswith(f"{API_PREFIX}/")):
        return
    access = handler.opt.get("access", "read")
    if access == "health" and settings.public_health:
        return
    principal = await _authenticate(connection, settings)
    if access == "admin":
        principal.require_admin()
    elif access in SCOPE_OF_ACCESS:
        principal.require_scope(SCOPE_OF_ACCESS[access])
    elif access not in ("any", "health"):  # fail closed on a mistyped access level
        raise ValueError(f"route {path} declares an unknown access level {access!r}")
    connection.state.principal = principal


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.state.principal
    return principal


async def _authenticate(connection: ASGIConnection[Any, Any, Any, Any], settings: Settings) -> Principal:
    """`authenticate`, with failures logged and counted per client address (a refused address: 429)."""
    failures = connection.app.state.resources.auth_failures
    address = connection.client.host if connection.client else None
    failures.check(address)
    try:
        return authenticate(connection.headers, settings)
    except Unauthorized as error:
        await failures.failed(address, error, where=connection.scope["path"])
        raise
