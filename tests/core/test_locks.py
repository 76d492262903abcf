"""The lease lock against the real Redis: renewed by the process's keeper while held, released atomically."""

from __future__ import annotations

import time
import uuid

import redis

from core.locks import LeaseLock
from tests.support.processes import wait_until

LEASE_SECONDS = 0.3


def a_key(redis_prefix: str) -> str:
    return f"{redis_prefix}test-lock:{uuid.uuid4().hex}"


def test_a_held_lock_outlives_its_lease(redis_client: redis.Redis, redis_prefix: str) -> None:
    lock = LeaseLock(redis_client, a_key(redis_prefix), LEASE_SECONDS)
    assert lock.acquire()
    try:
        watch_until = time.monotonic() + 4 * LEASE_SECONDS  # without renewal the key would vanish after one lease
        while time.monotonic() < watch_until:
            assert redis_client.get(lock.key) == lock.token.encode()
        assert not lock.lost
    finally:
        lock.release()
    assert not redis_client.exists(lock.key)


def test_a_second_holder_is_refused_while_the_first_holds_it(redis_client: redis.Redis, redis_prefix: str) -> None:
    key = a_key(redis_prefix)
    first, second = LeaseLock(redis_client, key, 30), LeaseLock(redis_client, key, 30)
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_a_lock_taken_over_is_marked_lost_and_its_release_leaves_the_new_holder(
        redis_client: redis.Redis, redis_prefix: str) -> None:
    lock = LeaseLock(redis_client, a_key(redis_prefix), LEASE_SECONDS)
    assert lock.acquire()
    redis_client.set(lock.key, "someone-else", px=30_000)  # as after an expired lease and another acquire

    wait_until(lambda: lock.lost, 5, "the keeper to notice the lock is no longer ours")
    lock.release()
    assert redis_client.get(lock.key) == b"someone-else"
