"""The web chat page: static files, no build step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).resolve().parent.parent / "static"


async def file_names_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    # `/static/chat.js%00.html`: no file is named with a control character, and the file system refuses
    # to look one up (a 500): answer what it is, not found.
    if any(ord(character) < 32 for character in connection.scope["path"]):
        raise NotFoundException("no such file")


static_files = create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False,
                                          guards=[file_names_only])


@get("/", include_in_schema=False)
async def chat_page() -> Response[bytes]:
    return Response((STATIC / "index.html").read_bytes(), media_type="text/html; charset=utf-8")
