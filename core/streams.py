"""How many push connections (SSE /events streams, socket.io connections) one API process holds.

Each open stream costs the process a socket, a hub subscription and its buffers for as long as the client
stays, so they are capped per user token (STREAMS_PER_USER) and in all (STREAMS_PER_PROCESS). The server
key and open access count only toward the process's total: a backend may hold streams for many users.
Counted in the process that holds them, which is what they cost: with N API replicas a user may hold up to
N x STREAMS_PER_USER.
"""

from __future__ import annotations

from collections import Counter

from core.auth import Principal
from core.errors import StreamCapacityReached, TooManyStreams


class StreamSlot:
    """One held stream; `release()` gives it back (more than once is harmless)."""

    def __init__(self, slots: StreamSlots, user_id: str | None) -> None:
        self._slots = slots
        self._user_id = user_id
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._give_back(self._user_id)

    def __del__(self) -> None:  # a stream dropped before it ever ran (e.g. never started) still gives its slot back
        self.release()


class StreamSlots:
    def __init__(self, per_user: int, per_process: int) -> None:
        self.per_user = per_user
        self.per_process = per_process
        self.held = 0
        self._by_user: Counter[str] = Counter()

    def take(self, principal: Principal) -> StreamSlot:
        """A slot for one more stream of this principal, or TooManyStreams (429) / StreamCapacityReached (503)."""
        user = principal.user_id if principal.via == "token" else None
        if user is not None and self._by_user[user] >= self.per_user:
            raise TooManyStreams(f"this user already holds {self.per_user} streams on this server; close one first",
                                 limit=self.per_user)
        if self.held >= self.per_process:
            raise StreamCapacityReached("this server holds as many streams as it allows; retry shortly",
                                        limit=self.per_process)
        self.held += 1
        if user is not None:
            self._by_user[user] += 1
        return StreamSlot(self, user)

    def held_by(self, user_id: str) -> int:
        return self._by_user[user_id]

    def _give_back(self, user: str | None) -> None:
        self.held -= 1
        if user is not None:
            self._by_user[user] -= 1
            if not self._by_user[user]:
                del self._by_user[user]
