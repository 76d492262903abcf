"""Streamed text coalesced into chunk events: one Redis write per short window, not one per token.

A generation's first text is sent at once (the client sees the reply start without delay); later text is
gathered until `window` has passed since that generation's last chunk (or `max_chars` are waiting), so a
generation sends at most one chunk per window. Text arriving after a quiet spell goes at once; text that
would wait is sent by one ticker, which flushes every generation whose window has passed together, so a
process's chunks leave in batches. Clients read the same events as before: `message.chunk` with
consecutive `index` and the `delta`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from core.bus import Event
from core.runtime.publisher import OrderedPublisher

if TYPE_CHECKING:
    from core.turns.claim import Turn


class ChunkStream:
    """The chunks of one turn's reply."""

    def __init__(self, coalescer: ChunkCoalescer, turn: Turn) -> None:
        self._coalescer = coalescer
        self._turn = turn
        self._parts: list[str] = []
        self._size = 0
        self._index = 0
        self._sent_at = float("-inf")

    def add(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        now = time.monotonic()
        if now >= self.due or self._size >= self._coalescer.max_chars:
            self.flush(now)
        elif len(self._parts) == 1:  # the first text to wait: the ticker sends it when the window has passed
            self._coalescer.later(self)

    @property
    def due(self) -> float:
        """When this generation may send its next chunk."""
        return self._sent_at + self._coalescer.window

    def flush(self, now: float | None = None) -> None:
        if not self._parts:
            return
        self._index += 1
        turn = self._turn
        delta = "".join(self._parts)
        self._parts.clear()
        self._size = 0
        self._sent_at = time.monotonic() if now is None else now
        self._coalescer.publisher.send([Event(
            session_id=turn.session_id, seq=turn.event_seq, chunk=self._index, type="message.chunk",
            data={"messageId": str(turn.reply_id), "replyTo": str(turn.message.id), "index": self._index,
                  "delta": delta})])

    def close(self) -> None:
        """The generation ended: send what is left now."""
        self._coalescer.forget(self)
        self.flush()


class ChunkCoalescer:
    def __init__(self, publisher: OrderedPublisher, window_seconds: float, max_chars: int) -> None:
        self.publisher = publisher
        self.window = window_seconds
        self.max_chars = max_chars
        self._waiting: set[ChunkStream] = set()
        self._wake = asyncio.Event()

    def stream(self, turn: Turn) -> ChunkStream:
        return ChunkStream(self, turn)

    def later(self, stream: ChunkStream) -> None:
        self._waiting.add(stream)
        self._wake.set()

    def forget(self, stream: ChunkStream) -> None:
        self._waiting.discard(stream)

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                await asyncio.sleep(max(0.0, min(stream.due for stream in self._waiting) - time.monotonic()))
                now = time.monotonic()
                due = [stream for stream in self._waiting if stream.due <= now]
                self._waiting.difference_update(due)
                for stream in due:
                    stream.flush(now)
