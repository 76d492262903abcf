"""The asyncio Redis client the API processes and the workers build (`core.bus.redis_client`)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import redis.asyncio as aredis

from core import bus


async def lost_cancellations(client: aredis.Redis, trials: int) -> int:
    """Cancel a task that runs commands at successive points of its work; how many cancellations it never saw
    (it went on, `cancelling()` set, instead of raising CancelledError)."""
    key = f"as-test-cancel:{uuid.uuid4()}"

    async def commands() -> bool:
        this_task = asyncio.current_task()
        assert this_task is not None
        while True:
            await client.set(key, "1", px=60_000)
            if this_task.cancelling():
                return True

    lost = 0
    for trial in range(trials):
        task = asyncio.create_task(commands())
        for _ in range(trial % 40):  # cancel it at a different point of its commands each time
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            lost += await task
    await client.delete(key)
    return lost


def test_a_task_cancelled_in_the_middle_of_a_command_is_cancelled(redis_url: str) -> None:
    # A superseded generation, a socket.io bridge whose room emptied and a worker's shutdown all cancel tasks
    # that are in Redis commands; with redis-py 8's default socket timeout, Python 3.11 lost most of those.
    async def scenario() -> int:
        client = bus.redis_client(redis_url, max_connections=2, pool_wait_seconds=5)
        try:
            return await lost_cancellations(client, trials=400)
        finally:
            await client.aclose()

    assert asyncio.run(scenario()) == 0
