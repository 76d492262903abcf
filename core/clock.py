"""The one place the code asks for the time, so there is one thing to control in tests."""

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime | None) -> str | None:
    """ISO 8601 UTC with millisecond precision and a `Z`, as JavaScript's `Date.toISOString()` writes it."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_millis(moment: datetime) -> int:
    """The millisecond a moment falls in (the one its ISO form shows), counted from 1970."""
    return (moment - EPOCH) // ONE_MS


def moment_of(millis: int) -> datetime:
    return EPOCH + millis * ONE_MS
