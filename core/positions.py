"""Positions in a session's history: what `before`/`after` accept, and the cursors a page hands out.

A position is
- a cursor, as a page's `cursors` hand it out: the boundary message's time in epoch milliseconds, plus a
  fraction telling apart the messages stored in that millisecond (.001 is its first message by seq, .002
  the second, ...). It is a JSON number on purpose: ElizaOS's JavaScript client turns a string `before`/`after`
  into a `Date` (so `"seq:5"` became a day in 2001) but passes a number on as it is, and the number still
  reads as the right moment wherever it is taken for a timestamp;
- `seq:N`: right before or after the message numbered N (the URLs we hand out ourselves use it);
- a time: ISO 8601 (UTC unless it says otherwise) or whole epoch milliseconds. Every timestamp we show has
  millisecond precision, so a time names a whole millisecond: `before` is before it, `after` from the next
  one on; `after=<a message's createdAt>` never returns that message again.

Only a cursor (or `seq:N`) is exact when several messages share a millisecond.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from core.clock import epoch_millis, moment_of
from core.errors import InvalidPagination
from core.validation import moment_from

SEQ_PREFIX = "seq:"
MAX_SEQ = 2**31 - 1  # messages.seq is an INTEGER column: Postgres refuses a bigger number (a 500, found by fuzzing)
MAX_RANK = 999  # three decimals: the messages a cursor can tell apart within one millisecond
# Times the code can compute with: year 1 to 9999 in UTC, with one millisecond to spare at the top for `after`.
FIRST_MS = epoch_millis(datetime(1, 1, 1, tzinfo=UTC))
LAST_MS = epoch_millis(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)) - 1
# A double keeps three decimals of a millisecond count exactly below 2^43 ms (the year 2248); beyond it, or for
# a message before 1970 (a negative count), or past the 999th message of one millisecond, a page hands out
# `seq:N` instead.
LARGEST_CURSOR_MS = 2**43

_WHOLE_MS = re.compile(r"-?[0-9]{1,16}", re.ASCII)
_CURSOR = re.compile(r"([0-9]{1,16})\.([0-9]+)", re.ASCII)
_SEQ = re.compile(r"[0-9]{1,20}", re.ASCII)


@dataclass(frozen=True)
class SeqPosition:
    seq: int


@dataclass(frozen=True)
class TimePosition:
    millis: int  # epoch milliseconds: the whole millisecond named

    @property
    def start(self) -> datetime:
        return moment_of(self.millis)

    @property
    def end(self) -> datetime:
        """The start of the next millisecond."""
        return moment_of(self.millis + 1)


@dataclass(frozen=True)
class CursorPosition:
    millis: int  # when the message was stored, in epoch milliseconds
    rank: int  # 1 for the first message (by seq) stored in that millisecond, 2 for the second, ...


Position = SeqPosition | TimePosition | CursorPosition


def parse_position(raw: str, field: str) -> Position:
    """Any string: a position, or InvalidPagination saying what `field` accepts (never another error)."""
    value = raw.strip()
    try:
        if value.startswith(SEQ_PREFIX):
            return _seq(value.removeprefix(SEQ_PREFIX))
        if _CURSOR.fullmatch(value):
            return _cursor(value)
        if _WHOLE_MS.fullmatch(value):
            return TimePosition(_in_range(int(value)))
        return TimePosition(_in_range(epoch_millis(moment_from(value))))
    except (ValueError, OverflowError):
        raise InvalidPagination(f"{field} must be an ISO 8601 timestamp or epoch milliseconds between the years "
                                f"1 and 9999, or a cursor from `cursors` (or seq:N)",
                                field=field, value=raw[:64]) from None


def _seq(digits: str) -> SeqPosition:
    if not _SEQ.fullmatch(digits) or int(digits) > MAX_SEQ:
        raise ValueError("not a sequence number")
    return SeqPosition(int(digits))


def _cursor(value: str) -> TimePosition | CursorPosition:
    whole, fraction = value.split(".")
    if len(fraction) > 3 and fraction[3:].strip("0"):
        raise ValueError("a cursor has at most three decimals")
    rank = int(fraction[:3].ljust(3, "0"))
    millis = _in_range(int(whole))
    return CursorPosition(millis, rank) if rank else TimePosition(millis)


def _in_range(millis: int) -> int:
    if not FIRST_MS <= millis <= LAST_MS:
        raise ValueError("out of range")
    return millis


def cursor_value(millis: int, rank: int, seq: int) -> float | str:
    """The cursor naming a message: `millis.rank` as a number, or `seq:N` where a double cannot carry that."""
    if 0 <= millis < LARGEST_CURSOR_MS and 1 <= rank <= MAX_RANK:
        return float(f"{millis}.{rank:03d}")  # the double nearest to it prints as exactly these digits
    return f"{SEQ_PREFIX}{seq}"
