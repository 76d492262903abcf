"""Many open /events streams on one API process share its few Redis connections (one hub subscription)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import redis

from api.resources import redis_client_name
from core.settings import Settings
from tests.support.factories import SESSIONS, create_session, send_message
from tests.support.processes import Stack
from tests.support.sse import parse_events

SUBSCRIBERS = 500


async def created_event_id(response: httpx.Response, want: str) -> str | None:
    """Read one SSE stream until the `message.created` of message `want`; returns its event id."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        lines.append(line)
        if line == "":
            for event in parse_events(iter(lines)):
                if event.event == "message.created" and event.data["message"]["id"] == want:
                    return event.id
            lines = []
    return None


def api_redis_connections(redis_client: redis.Redis, stack: Stack) -> int:
    api_pid = next(s.process.pid for s in stack.services if s.name == "api")
    name = redis_client_name(api_pid)
    return sum(1 for client in redis_client.client_list() if client.get("name") == name)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_500_event_streams_get_one_broadcast_over_a_handful_of_redis_connections(
        client: httpx.Client, stack: Stack, redis_client: redis.Redis) -> None:
    sid = create_session(client)["sessionId"]

    async def scenario() -> tuple[list[str | None], int]:
        limits = httpx.Limits(max_connections=SUBSCRIBERS + 10, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=stack.base_url, limits=limits, timeout=httpx.Timeout(30)) as http:
            url = f"{SESSIONS}/{sid}/events"
            responses = await asyncio.gather(*(http.send(http.build_request("GET", url), stream=True)
                                               for _ in range(SUBSCRIBERS)))
            try:
                assert {r.status_code for r in responses} == {200}  # each one is subscribed from here on
                sent = await asyncio.to_thread(send_message, client, sid, "Hello everyone", transport="websocket")
                assert sent.status_code == 202, sent.text
                want = sent.json()["userMessage"]["id"]
                received = await asyncio.wait_for(
                    asyncio.gather(*(created_event_id(r, want) for r in responses)), 30)
                connections = await asyncio.to_thread(api_redis_connections, redis_client, stack)
                return received, connections
            finally:
                await asyncio.gather(*(r.aclose() for r in responses))

    received, connections = asyncio.run(scenario())

    assert received == ["1-0"] * SUBSCRIBERS
    assert 1 <= connections <= Settings().api_redis_max_connections
    print(f"{SUBSCRIBERS} streams, {connections} Redis connections held by the API process")
