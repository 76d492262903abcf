"""The per-agent circuit breaker (state in Redis; fakeredis here, the worker tests use the real one)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import fakeredis
import pytest

from core.agents.base import AgentFailure
from core.breaker import CircuitBreaker
from core.bus import Keys
from tests.support.asyncio_bridge import Blocking
from tests.support.processes import wait_until


def breaker(client: fakeredis.FakeAsyncRedis, agent_id: uuid.UUID, cooldown: float = 0.2) -> Any:
    """The breaker, its async calls run to completion (on one loop per Redis client)."""
    return Blocking(CircuitBreaker(client, Keys("t:"), agent_id, failure_threshold=2, cooldown_seconds=cooldown,
                                   trial_seconds=5), loop_of(client))


_loops: dict[int, asyncio.AbstractEventLoop] = {}


def redis_client() -> fakeredis.FakeAsyncRedis:
    client = fakeredis.FakeAsyncRedis()
    _loops[id(client)] = asyncio.new_event_loop()
    return client


def loop_of(client: fakeredis.FakeAsyncRedis) -> asyncio.AbstractEventLoop:
    return _loops[id(client)]


def is_closed_or_half_open(subject: Any) -> bool:
    try:
        subject.before_call()
        return True
    except AgentFailure:
        return False


def test_opens_after_consecutive_failures_and_fails_fast_with_the_last_error() -> None:
    subject = breaker(redis_client(), uuid.uuid4(), cooldown=30)
    subject.record_failure("503 one")
    subject.before_call()  # one failure: still closed
    subject.record_failure("503 two")

    with pytest.raises(AgentFailure) as caught:
        subject.before_call()

    assert caught.value.code == "AGENT_CIRCUIT_OPEN" and caught.value.transient is False
    assert "2 calls failed in a row (last: 503 two)" in caught.value.reason


def test_a_success_resets_the_count() -> None:
    subject = breaker(redis_client(), uuid.uuid4())
    subject.record_failure("x")
    subject.record_success()
    subject.record_failure("y")

    subject.before_call()  # one consecutive failure only: closed


def test_state_is_shared_by_every_breaker_of_the_agent() -> None:
    client, agent_id = redis_client(), uuid.uuid4()
    breaker(client, agent_id).record_failure("a")
    breaker(client, agent_id).record_failure("b")

    assert not is_closed_or_half_open(breaker(client, agent_id))
    assert is_closed_or_half_open(breaker(client, uuid.uuid4()))  # other agents are not affected


def test_after_the_cooldown_one_trial_passes_and_its_success_closes() -> None:
    client, agent_id = redis_client(), uuid.uuid4()
    first, second = breaker(client, agent_id), breaker(client, agent_id)
    first.record_failure("a")
    first.record_failure("b")

    wait_until(lambda: is_closed_or_half_open(first), 5, "the cool-down to pass")
    assert not is_closed_or_half_open(second)  # the trial slot is taken
    first.record_success()

    assert is_closed_or_half_open(second) and is_closed_or_half_open(second)


def test_a_failed_trial_opens_it_again() -> None:
    client, agent_id = redis_client(), uuid.uuid4()
    subject = breaker(client, agent_id)
    subject.record_failure("a")
    subject.record_failure("b")
    wait_until(lambda: is_closed_or_half_open(subject), 5, "the cool-down to pass")

    subject.record_failure("trial failed")

    with pytest.raises(AgentFailure, match="last: trial failed"):
        subject.before_call()
