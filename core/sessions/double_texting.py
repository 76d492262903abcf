"""Double texting: what a message sent while an earlier one still waits for its reply does.

Every decision of the four strategies lives here; the API asks `refuses_when_busy`, the worker's claim asks
`select` and its run asks `watches_for_newer`.
- enqueue: each message gets its own reply, in order.
- reject: a message sent while another waits is refused (409 SESSION_BUSY); the worker treats the rest like enqueue.
- interrupt: only the newest waiting message is answered; older waiting ones fail as SUPERSEDED, and a
  generation under way is abandoned when a newer message arrives.
- coalesce: every waiting message is answered as one turn (one reply), after the newest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

Row = TypeVar("Row")


class DoubleTexting(StrEnum):
    ENQUEUE = "enqueue"
    REJECT = "reject"
    INTERRUPT = "interrupt"
    COALESCE = "coalesce"

    @property
    def refuses_when_busy(self) -> bool:
        return self is DoubleTexting.REJECT

    @property
    def looks_past_the_oldest(self) -> bool:
        """Whether a claim needs every waiting message (else the oldest is enough)."""
        return self in (DoubleTexting.INTERRUPT, DoubleTexting.COALESCE)

    @property
    def watches_for_newer(self) -> bool:
        """Whether a generation under way is abandoned when a newer message arrives."""
        return self is DoubleTexting.INTERRUPT

    def select(self, waiting: Sequence[Row]) -> Selection[Row]:
        """Which of the waiting messages (oldest first) one turn answers, and which it supersedes."""
        if self is DoubleTexting.COALESCE:
            return Selection(answered=tuple(waiting))
        if self is DoubleTexting.INTERRUPT:
            return Selection(answered=tuple(waiting[-1:]), superseded=tuple(waiting[:-1]))
        return Selection(answered=tuple(waiting[:1]))


@dataclass(frozen=True)
class Selection(Generic[Row]):
    answered: tuple[Row, ...]  # one turn: the last is the message replied to, earlier ones are coalesced into it
    superseded: tuple[Row, ...] = ()


# What a superseded message's failure says.
SUPERSEDED_CODE = "SUPERSEDED"
SUPERSEDED_REASON = "a newer message arrived before this one was answered (interrupt)"
