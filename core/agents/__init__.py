"""Agent providers, chosen by an agent's `provider` field."""

from __future__ import annotations

from typing import Any

from core.agents.base import Agent, AgentFailure


def build_agent(provider: str, settings: dict[str, Any]) -> Agent:
    if provider == "eliza":
        from core.agents.eliza import ElizaAgent

        return ElizaAgent.from_settings(settings)
    if provider == "echo":
        from core.agents.echo import EchoAgent

        return EchoAgent()
    raise AgentFailure(f"provider {provider!r} is not available in this build")
