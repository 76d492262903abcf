"""A per-agent circuit breaker whose state lives in Redis, so every worker process shares it.

Shared rather than per process: all workers call the same model server, so they should agree that it is
down. Per process, N workers would each need their own run of failures before failing fast (N times the
load on a struggling server), and a restarted worker would forget.

Closed: calls go through; each transient failure adds one to a count of consecutive failures, a success
resets it. Open (the count reached the threshold): calls fail fast, without touching the model server,
until the cool-down has passed. Half-open (after the cool-down): one call at a time is let through as a
trial (a short-lived Redis key makes it exclusive across workers); success closes the breaker, failure
opens it for another cool-down. Only transient failures count: a refused key or an unknown model fails
each message at once anyway, and a prompt too long for the model says nothing about the server.
"""

from __future__ import annotations

import time
import uuid

import redis.asyncio as aredis

from core.agents.base import AgentFailure
from core.bus import Keys

# A breaker left alone this long after its last failure is forgotten (closed).
FORGET_AFTER_SECONDS = 3600


class CircuitBreaker:
    def __init__(self, client: aredis.Redis, keys: Keys, agent_id: uuid.UUID, *, failure_threshold: int,
                 cooldown_seconds: float, trial_seconds: float) -> None:
        self._redis = client
        self._key = keys.agent_breaker(agent_id)
        self._trial_key = keys.agent_breaker_probe(agent_id)
        self._threshold = failure_threshold
        self._cooldown = cooldown_seconds
        self._trial_seconds = trial_seconds  # how long a trial call may hold the half-open slot
        self._recorded = True  # whether Redis may hold failures to reset (known after `before_call`)

    async def before_call(self) -> None:
        """Raise a (non-transient) failure at once if the breaker is open or a trial is already running."""
        state = await self._redis.hmget(self._key, "failures", "open_until", "last_error")
        failures, open_until = int(state[0] or 0), float(state[1] or 0)
        self._recorded = bool(failures or open_until)
        if not open_until:
            return
        last_error = state[2].decode() if isinstance(state[2], bytes) else state[2] or ""
        wait = open_until - time.time()
        if wait > 0:
            raise AgentFailure(f"the agent's model provider is unavailable: {failures} calls failed in a row "
                               f"(last: {last_error}); not calling it again for {wait:.1f} s",
                               code="AGENT_CIRCUIT_OPEN")
        if not await self._redis.set(self._trial_key, 1, nx=True, ex=max(1, round(self._trial_seconds))):
            raise AgentFailure(f"the agent's model provider is unavailable (last: {last_error}); a trial call is "
                               "checking whether it is back", code="AGENT_CIRCUIT_OPEN")

    async def record_success(self) -> None:
        if self._recorded:  # nothing to reset on the common path: no Redis write per healthy call
            await self._redis.delete(self._key, self._trial_key)

    async def record_failure(self, reason: str) -> None:
        pipe = self._redis.pipeline()
        pipe.hincrby(self._key, "failures", 1)
        pipe.hset(self._key, "last_error", reason)
        pipe.expire(self._key, FORGET_AFTER_SECONDS + round(self._cooldown))
        failures = (await pipe.execute())[0]
        if failures >= self._threshold:
            pipe.hset(self._key, "open_until", time.time() + self._cooldown)
            pipe.delete(self._trial_key)
            await pipe.execute()
