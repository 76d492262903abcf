"""Agent providers, chosen by an agent's `provider` field."""

from __future__ import annotations

from typing import Any

from core.agents.base import Agent, AgentFailure

# Providers that call a service over the network: guarded by the per-agent circuit breaker.
REMOTE_PROVIDERS = frozenset({"openai"})


def build_agent(provider: str, settings: dict[str, Any]) -> Agent:
    if provider == "eliza":
        from core.agents.eliza import ElizaAgent

        return ElizaAgent.from_settings(settings)
    if provider == "echo":
        from core.agents.echo import EchoAgent

        return EchoAgent.from_settings(settings)
    if provider == "openai":
        from core.agents.openai_provider import OpenAIAgent

        return OpenAIAgent.from_settings(settings)
    raise AgentFailure(f"provider {provider!r} is not available in this build")


async def close_agent_connections() -> None:
    """Close the connections agents opened on this event loop (model servers), when its owner stops."""
    import sys

    provider = sys.modules.get("core.agents.openai_provider")  # nothing to close if no such agent ever ran
    if provider is not None:
        await provider.close_sessions()
