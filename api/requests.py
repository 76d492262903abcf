"""The request class of the API: JSON bodies are refused (400 INVALID_JSON) beyond a nesting depth.

msgspec decodes JSON recursively and raises RecursionError (not a decode error) around 1,000 levels, which
surfaced as a 500; a shallower but deep body would still recurse through validation and storage. No body of
this API nests deeper than a few levels (metadata and character files included), so MAX_JSON_DEPTH is ample.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException

MAX_JSON_DEPTH = 64


def nests_deeper_than(value: Any, limit: int) -> bool:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


class ApiRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        too_deep = SerializationException(f"it nests arrays and objects deeper than {MAX_JSON_DEPTH} levels")
        try:
            value = await super().json()
        except RecursionError:
            raise too_deep from None
        if nests_deeper_than(value, MAX_JSON_DEPTH):
            raise too_deep
        return value
