"""The web chat page at `/` and its static files (plain HTML, CSS and JavaScript: nothing to build)."""

from __future__ import annotations

from pathlib import Path

from litestar import get
from litestar.enums import MediaType
from litestar.response import File
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


@get("/", include_in_schema=False, media_type=MediaType.HTML)
async def chat_page() -> File:
    return File(STATIC_DIR / "index.html", content_disposition_type="inline", media_type=MediaType.HTML)


static_files = create_static_files_router(path="/static", directories=[STATIC_DIR], include_in_schema=False)
