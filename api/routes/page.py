"""The web chat page: static files, no build step."""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).resolve().parent.parent / "static"

static_files = create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False)


@get("/", include_in_schema=False)
async def chat_page() -> Response[bytes]:
    return Response((STATIC / "index.html").read_bytes(), media_type="text/html; charset=utf-8")
