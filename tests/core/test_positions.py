"""History positions (`before`/`after`): any string is a position or a clear InvalidPagination, and a cursor
survives the trip through a JavaScript number (the form ElizaOS's client passes it back in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.clock import epoch_millis
from core.errors import InvalidPagination
from core.positions import (
    LARGEST_CURSOR_MS,
    MAX_SEQ,
    CursorPosition,
    SeqPosition,
    TimePosition,
    cursor_value,
    parse_position,
)

# Strings shaped like what the parser looks for, so the search reaches its edges, not just its first check.
NUMBERS = st.from_regex(r"\A[+-]?[0-9]{0,22}(\.[0-9]{0,6})?\Z")
SEQS = st.from_regex(r"\Aseq:[+-]?[0-9]{0,24}\Z")
ISO = st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat())


@given(st.one_of(st.text(), NUMBERS, SEQS, ISO))
@example("seq:99999999999999999999")
@example("seq:-99999999999999999999")
@example("seq:9223372036854775808")
@example("0001-01-01T00:00:00+01:00")  # before year 1 in UTC
@example("9999-12-31T23:59:59.999-01:00")  # after year 9999 in UTC
@example("9999-12-31T23:59:59.999Z")  # no millisecond after it
@example("99999999999999999")
@example("1705312800123.0001")
@example("²")
@example("1e400")
def test_any_string_is_a_position_or_invalid_pagination(raw: str) -> None:
    try:
        position = parse_position(raw, "before")
    except InvalidPagination as error:
        assert error.code == "INVALID_PAGINATION" and error.details["field"] == "before"  # noqa: PT017  refusing is one of the two valid outcomes
        return
    if isinstance(position, SeqPosition):
        assert 0 <= position.seq <= MAX_SEQ
    elif isinstance(position, TimePosition):
        assert position.start.tzinfo is UTC and position.end - position.start == timedelta(milliseconds=1)
    else:
        assert isinstance(position, CursorPosition) and 1 <= position.rank <= 999 and position.millis >= 0


@given(st.integers(0, LARGEST_CURSOR_MS - 1), st.integers(1, 999), st.integers(1, MAX_SEQ))
def test_a_cursor_survives_a_javascript_number(millis: int, rank: int, seq: int) -> None:
    cursor = cursor_value(millis, rank, seq)

    # Python's repr and JavaScript's Number#toString both write the shortest digits that read back the same.
    assert isinstance(cursor, float) and parse_position(repr(cursor), "after") == CursorPosition(millis, rank)
    assert int(cursor) == millis  # read as a timestamp, it is still the message's millisecond


@pytest.mark.parametrize(("millis", "rank"), [(-1, 1), (LARGEST_CURSOR_MS, 1), (1_705_312_800_123, 1000)])
def test_a_cursor_a_number_cannot_carry_is_a_sequence_number(millis: int, rank: int) -> None:
    assert cursor_value(millis, rank, 42) == "seq:42"
    assert parse_position("seq:42", "before") == SeqPosition(42)


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),  # noqa: DTZ001  naive bounds: hypothesis adds the zone
                    timezones=st.just(UTC)))
def test_a_timestamp_names_its_whole_millisecond(moment: datetime) -> None:
    shown = moment.isoformat(timespec="milliseconds")

    position = parse_position(shown, "after")

    assert position == TimePosition(epoch_millis(moment))
    assert position.start <= moment < position.end


def test_offsets_are_read_and_naive_times_are_utc() -> None:
    paris = datetime(2024, 1, 15, 11, 0, tzinfo=timezone(timedelta(hours=1)))

    assert parse_position(paris.isoformat(), "before") == parse_position("2024-01-15T10:00:00", "before")
    assert parse_position("1705312800000", "before") == parse_position("2024-01-15T10:00:00Z", "before")
