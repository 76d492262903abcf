"""The Redis rate limiter against the real Redis: windows, refusals that cost nothing, switches."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aredis

from core.bus import Keys
from core.errors import RateLimited
from core.ratelimit import RateLimiter
from core.settings import Settings
from tests.support.databases import REDIS_URL


def run_with_limiter(prefix: str, scenario: Callable[[RateLimiter], Awaitable[Any]], **values: Any) -> Any:
    settings = Settings(_env_file=None, rate_limit_enabled=True, **values)  # type: ignore[call-arg]

    async def main() -> Any:
        client = aredis.Redis.from_url(REDIS_URL)
        try:
            return await scenario(RateLimiter(client, Keys(f"{prefix}rl-{uuid.uuid4().hex[:8]}:"), settings))
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_session_window_refuses_then_recovers(redis_prefix: str) -> None:
    session = uuid.uuid4()

    async def scenario(limiter: RateLimiter) -> tuple[RateLimited, float]:
        for _ in range(3):
            await limiter.message(session, "alice")
        with pytest.raises(RateLimited) as refused:
            await limiter.message(session, "alice")
        started = time.monotonic()
        while True:  # the window is 0.5 s: poll until it admits again
            try:
                await limiter.message(session, "alice")
                return refused.value, time.monotonic() - started
            except RateLimited:
                await asyncio.sleep(0.05)

    refused, waited = run_with_limiter(redis_prefix, scenario, rate_limit_window_seconds=0.5,
                                       rate_limit_messages_per_session=3)

    assert refused.code == "RATE_LIMIT_EXCEEDED" and refused.retry_after == 1
    assert refused.details["bucket"] == "messages per session" and refused.details["limit"] == 3
    assert waited < 1.5


def test_a_refused_message_costs_no_quota_in_the_other_buckets(redis_prefix: str) -> None:
    full, other = uuid.uuid4(), uuid.uuid4()

    async def scenario(limiter: RateLimiter) -> str:
        for _ in range(3):
            await limiter.message(full, "bob")
        for _ in range(5):  # refused by the session bucket: must not use up bob's user quota
            with pytest.raises(RateLimited):
                await limiter.message(full, "bob")
        await limiter.message(other, "bob")  # bob's 4th counted message: admitted
        with pytest.raises(RateLimited) as refused:
            await limiter.message(other, "bob")
        return refused.value.details["bucket"]

    bucket = run_with_limiter(redis_prefix, scenario, rate_limit_messages_per_session=3,
                              rate_limit_messages_per_user=4)

    assert bucket == "messages per user"


def test_limits_are_off_in_the_test_environment_and_on_in_production() -> None:
    assert not Settings(_env_file=None, environment="test").rate_limits_on  # type: ignore[call-arg]
    assert Settings(_env_file=None, environment="production").rate_limits_on  # type: ignore[call-arg]


def test_zero_limit_switches_one_bucket_off(redis_prefix: str) -> None:
    async def scenario(limiter: RateLimiter) -> int:
        for _ in range(20):
            await limiter.session_created("carol")
        return 20

    assert run_with_limiter(redis_prefix, scenario, rate_limit_sessions_per_user=0) == 20
