"""Reading server-sent events from a real HTTP response (httpx streaming; pings are skipped)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class SSE:
    event: str
    id: str | None
    payload: dict[str, Any]  # the JSON of `data:`: an envelope on /events, the payload itself on an SSE reply

    @property
    def envelope(self) -> dict[str, Any]:
        return self.payload

    @property
    def data(self) -> dict[str, Any]:
        """An /events envelope's data."""
        return self.envelope["data"]


def parse_events(lines: Iterator[str]) -> Iterator[SSE]:
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                yield SSE(fields.get("event", "message"), fields.get("id"), json.loads(fields["data"]))
            fields = {}
        elif not line.startswith(":"):  # ":" starts a comment: the keep-alive ping
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def read_events(response: httpx.Response) -> Iterator[SSE]:
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_events(response.iter_lines())


def read_until(events: Iterator[SSE], done: Any) -> list[SSE]:
    """Events up to and including the first for which `done(event)` holds."""
    seen = []
    for event in events:
        seen.append(event)
        if done(event):
            return seen
    raise AssertionError(f"the stream ended before the expected event; got {[e.event for e in seen]}")
