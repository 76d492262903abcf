"""Step 2 of a turn: the agent's reply, its chunks streamed as they come; or why there is none."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as aredis
import structlog
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from core.agents import REMOTE_PROVIDERS, build_agent
from core.agents.base import AgentContext, AgentFailure, AgentReply
from core.agents.character import CircuitBreakerSettings
from core.analysis import public_state
from core.breaker import CircuitBreaker
from core.bus import Keys
from core.settings import Settings

if TYPE_CHECKING:
    from core.turns.claim import Turn

log = structlog.get_logger(__name__)


class ChunkSink(Protocol):
    """Where a generation's text goes as it streams (coalesced into chunk events by the runtime)."""

    def add(self, text: str) -> None: ...


def agent_context(turn: Turn) -> AgentContext:
    state = public_state(turn.session.state or None)
    return AgentContext(
        session_id=str(turn.session_id), user_id=turn.session.user_id, message=turn.prompt, history=turn.history,
        settings=turn.agent_settings, preferences=state.get("preferences", {}), conversation=state,
        agent_state=turn.session.agent_state or {}, agent_name=turn.session.agent_name,
    )


def breaker_for(turn: Turn, client: aredis.Redis, keys: Keys) -> CircuitBreaker | None:
    """The agent's circuit breaker, for agents that call out over the network."""
    if turn.provider not in REMOTE_PROVIDERS:
        return None
    model = turn.agent_settings.get("model") or {}
    try:
        config = CircuitBreakerSettings.model_validate(model.get("circuitBreaker") or {})
        trial_seconds = float(model.get("requestTimeoutSeconds") or 60) + 5
    except ValueError:
        config, trial_seconds = CircuitBreakerSettings(), 65.0
    return CircuitBreaker(client, keys, turn.session.agent_id, failure_threshold=config.failure_threshold,
                          cooldown_seconds=config.cooldown_seconds, trial_seconds=trial_seconds)


async def run_agent(turn: Turn, chunks: ChunkSink, breaker: CircuitBreaker | None,
                    settings: Settings) -> AgentReply | AgentFailure:
    """The agent's final reply, streaming its chunks as it goes; or why it failed.

    The one place agent calls are retried: transient failures, with exponential backoff, each attempt
    passing through the agent's circuit breaker (if it calls out), which fails fast while open.
    """
    context = agent_context(turn)
    for attempt in range(1, settings.agent_attempts + 1):
        try:
            if breaker:
                await breaker.before_call()
            reply = await _generate(turn, context, chunks)
            if breaker:
                await breaker.record_success()
            return reply
        except AgentFailure as failure:
            if failure.transient and breaker:
                await breaker.record_failure(failure.reason)
            if not failure.transient or attempt == settings.agent_attempts:
                return failure
            log.warning("agent failed, retrying", attempt=attempt, reason=failure.reason)
            await asyncio.sleep(settings.agent_retry_backoff_seconds * 2 ** (attempt - 1))
        except (RedisError, SQLAlchemyError):
            raise  # our infrastructure, not the agent (breaker state): the turn is handed back, the message waits
        except Exception as exc:  # a bug in an agent must fail one message, not the worker
            log.exception("agent crashed")
            return AgentFailure(f"the agent raised {type(exc).__name__}: {exc}")
    raise AssertionError("unreachable")


async def _generate(turn: Turn, context: AgentContext, chunks: ChunkSink) -> AgentReply:
    final: AgentReply | None = None
    async for item in build_agent(turn.provider, turn.agent_settings).run(context):
        if isinstance(item, AgentReply):
            final = item
        else:
            chunks.add(item)
    if final is None:
        raise AgentFailure("the agent finished without a reply")
    return final
