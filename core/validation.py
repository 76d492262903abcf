"""Input rules that depend on settings (so they are not static schema constraints)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from core.errors import ContentInvalid, InvalidInput, MetadataTooLarge
from core.settings import Settings


def check_metadata(metadata: dict[str, Any] | None, settings: Settings, field: str = "metadata") -> dict[str, Any]:
    if not metadata:
        return {}
    size = len(orjson.dumps(metadata))
    if size > settings.metadata_max_bytes:
        raise MetadataTooLarge(f"{field} is {size} bytes; the limit is {settings.metadata_max_bytes}",
                               field=field, size=size, limit=settings.metadata_max_bytes)
    return metadata


def check_attachments(attachments: list[Any], settings: Settings) -> list[Any]:
    if len(attachments) > settings.attachments_max:
        raise InvalidInput(f"{len(attachments)} attachments; the limit is {settings.attachments_max}",
                           field="attachments", count=len(attachments), limit=settings.attachments_max)
    return attachments


def check_content(content: str, settings: Settings) -> str:
    if not content.strip():
        raise ContentInvalid("content must not be empty", field="content")
    if len(content) > settings.content_max_chars:
        raise ContentInvalid(f"content is {len(content)} characters; the limit is {settings.content_max_chars}",
                             field="content", length=len(content), limit=settings.content_max_chars)
    return content


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise InvalidInput(f"{field} is not a valid UUID", field=field, value=str(value)[:64]) from None


def moment_from(value: str) -> datetime:
    """An ISO 8601 timestamp (UTC when it has no offset) or epoch milliseconds, in UTC; ValueError otherwise
    (also for a moment UTC cannot hold, such as the first hour of year 1 east of Greenwich)."""
    value = value.strip()
    try:
        if value.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(value) / 1000, UTC)
        moment = datetime.fromisoformat(value)
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (OverflowError, OSError) as error:
        raise ValueError(str(error)) from None


def request_fingerprint(payload: Any) -> str:
    """A stable hash of a request body, to tell an idempotent retry from a reused key."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= 255:
        raise InvalidInput("Idempotency-Key must be 1 to 255 characters", field="Idempotency-Key")
    return key
