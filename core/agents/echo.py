"""A trivial agent that repeats the message: a baseline for benchmarks and pipeline tests.

With `chunkDelayMs` it pauses before each chunk, as a model's generation would: a stand-in for an agent
whose time goes to waiting (benchmarks of worker scaling, load tests) rather than to our CPU.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from core.agents.base import AgentContext, AgentOutput, AgentReply, chunk_delay_seconds, paced

PREFIX = "echo: "


class EchoAgent:
    def __init__(self, delay_seconds: float = 0.0) -> None:
        self.delay_seconds = delay_seconds

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> EchoAgent:
        return cls(chunk_delay_seconds(settings))

    async def run(self, context: AgentContext) -> AsyncIterator[AgentOutput]:
        async for chunk in paced([PREFIX, context.message] if context.message else [PREFIX], self.delay_seconds):
            yield chunk
        yield AgentReply(
            text=PREFIX + context.message,
            thought="echo agent repeats the message",
            actions=("REPLY",),
            confidence=1.0,
        )
