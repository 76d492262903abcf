"""The one place the code asks for the time, so there is one thing to control in tests."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with millisecond precision and a `Z`, as JavaScript's `Date.toISOString()` writes it."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
