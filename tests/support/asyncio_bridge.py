"""Calling async code from plain tests: one event loop per test, kept while the test runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from core.agents import close_agent_connections

T = TypeVar("T")


class Blocking:
    """A proxy whose method calls run the object's coroutine methods to completion on one private loop."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._target = target
        self._loop = loop or asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            return self._loop.run_until_complete(result) if isinstance(result, Awaitable) else result

        return call


async def collect(items: AsyncIterator[T]) -> list[T]:
    try:
        return [item async for item in items]
    finally:
        await close_agent_connections()  # the loop ends with this call: so do its model connections


def outputs_of(stream: AsyncIterator[T]) -> list[T]:
    """Everything an async generator yields (an agent's chunks and final reply)."""
    return asyncio.run(collect(stream))


def record_sleeps(monkeypatch: Any) -> list[float]:
    """Make `asyncio.sleep` return at once, recording the pauses asked for (an agent's chunk delays)."""
    sleeps: list[float] = []

    async def sleep(seconds: float, result: Any = None) -> Any:
        sleeps.append(seconds)
        return result

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return sleeps
