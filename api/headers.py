"""Security headers on every response, errors and unknown routes included (an app-level send hook)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

# The API and a same-origin chat page: scripts, styles, and socket.io/SSE connections from our own origin only.
API_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# The interactive OpenAPI pages load their renderer from a CDN and run inline bootstrapping code.
_DOCS_SOURCES = "https://cdn.jsdelivr.net https://unpkg.com https://cdn.redoc.ly"
DOCS_CSP = (f"default-src 'self'; script-src 'self' 'unsafe-inline' {_DOCS_SOURCES}; "
            f"style-src 'self' 'unsafe-inline' {_DOCS_SOURCES} https://fonts.googleapis.com; "
            "font-src 'self' data: https://fonts.gstatic.com; img-src 'self' data: https:; connect-src 'self'; "
            "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def security_headers(docs_path: str) -> Callable[[Message, Scope], Awaitable[None]]:
    async def add_security_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        path = scope.get("path", "")
        for name, value in COMMON.items():
            headers.setdefault(name, value)
        headers.setdefault("Content-Security-Policy", DOCS_CSP if path.startswith(docs_path) else API_CSP)
        if path.startswith("/api"):
            headers.setdefault("Cache-Control", "no-store")  # session data must not sit in shared caches

    return add_security_headers


def outside_litestar(app: ASGIApp, docs_path: str, prefix: str = "/socket.io") -> ASGIApp:
    """socket.io's HTTP answers (long-polling, handshakes, errors) come from python-socketio's ASGI app, not
    through Litestar's send hook: give them the same headers."""
    add_security_headers = security_headers(docs_path)

    async def with_headers(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not scope["path"].startswith(prefix):
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            await add_security_headers(message, scope)
            await send(message)

        await app(scope, receive, send_with_headers)

    return with_headers
