"""The contract every agent provider implements.

An agent is called by the worker with everything it needs about the conversation and yields its
reply as text chunks (for streaming) followed by exactly one `AgentReply`, asynchronously: a generation
is mostly waiting (for a model server), and hundreds run at once on one event loop per worker process.
An agent whose work is CPU-bound (ELIZA) computes its reply in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class HistoryItem:
    role: str  # a Role
    content: str


@dataclass(frozen=True)
class AgentContext:
    session_id: str
    user_id: str
    message: str  # the user message being answered
    history: tuple[HistoryItem, ...] = ()  # earlier messages, oldest first, excluding `message`
    settings: dict[str, Any] = field(default_factory=dict)  # the agent's own settings
    preferences: dict[str, Any] = field(default_factory=dict)  # learned about the user (name, ...)
    conversation: dict[str, Any] = field(default_factory=dict)  # stage, sentiment, ... (read only)
    agent_state: dict[str, Any] = field(default_factory=dict)  # private to the agent, persisted per session
    agent_name: str = ""


@dataclass(frozen=True)
class AgentReply:
    text: str
    thought: str = ""
    actions: tuple[str, ...] = ()
    confidence: float = 0.5  # 0..1: how sure the agent is of this reply
    agent_state: dict[str, Any] = field(default_factory=dict)  # stored and handed back next turn


AgentOutput = str | AgentReply  # chunks of text, then one final AgentReply


class Agent(Protocol):
    def run(self, context: AgentContext) -> AsyncIterator[AgentOutput]: ...


class AgentFailure(Exception):
    """An agent could not answer. `transient` failures are retried by the worker; `code` is the
    machine-readable error code of the `message.failed` event."""

    def __init__(self, reason: str, *, transient: bool = False, code: str = "AGENT_FAILED") -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.code = code


MAX_CHUNK_DELAY_MS = 1000


def chunk_delay_seconds(settings: dict[str, Any]) -> float:
    """The demo pause between streamed chunks (agent setting `chunk_delay_ms`), capped so it cannot stall a worker."""
    try:
        return min(max(0.0, float(settings.get("chunkDelayMs", 0))), MAX_CHUNK_DELAY_MS) / 1000
    except (TypeError, ValueError):
        return 0.0


WORD_CHUNK = re.compile(r"\S+\s*")


async def paced(chunks: list[str], delay_seconds: float) -> AsyncIterator[str]:
    """The chunks of a reply computed at once, with the demo pause (`chunkDelayMs`) between them."""
    for index, chunk in enumerate(chunks):
        if index and delay_seconds:
            await asyncio.sleep(delay_seconds)
        yield chunk
