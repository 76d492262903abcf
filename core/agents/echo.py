"""A trivial agent that repeats the message: a baseline for benchmarks and pipeline tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from core.agents.base import AgentContext, AgentOutput, AgentReply

PREFIX = "echo: "


class EchoAgent:
    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> EchoAgent:
        return cls()

    def run(self, context: AgentContext) -> Iterator[AgentOutput]:
        yield PREFIX
        if context.message:
            yield context.message
        yield AgentReply(
            text=PREFIX + context.message,
            thought="echo agent repeats the message",
            actions=("REPLY",),
            confidence=1.0,
        )
