"""The Python client against a real server (API + worker on Postgres): every method, and typed errors."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import create_engine, update

from agent_sessions_client import (
    AgentNameTaken,
    AsyncSessionsClient,
    InvalidRequest,
    MessageChunk,
    MessageCompleted,
    MessageCreated,
    ReplyPublic,
    SessionEnded,
    SessionExpired,
    SessionNotFound,
    SessionPaused,
    SessionsClient,
    StateUpdated,
)
from core.clock import utcnow
from core.models import DEFAULT_AGENT_ID, sessions_table
from tests.support.factories import unique_user
from tests.support.processes import Stack

# One backend is enough: the client sees only HTTP.
pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True, scope="session")


@pytest.fixture()
def api(stack: Stack) -> Iterator[SessionsClient]:
    with SessionsClient(stack.base_url, api_key="test-key") as client:
        yield client


@pytest.fixture()
def session_id(api: SessionsClient) -> str:
    return str(api.create_session(DEFAULT_AGENT_ID, unique_user()).session_id)


def require_sse(stack: Stack, session_id: str) -> None:
    """Skip unless the server streams (`/events`); streaming lands separately and turns these tests on."""
    with httpx.stream("GET", f"{stack.base_url}/api/messaging/sessions/{session_id}/events", timeout=5) as response:
        if response.status_code in (400, 404, 405) or \
                not response.headers.get("content-type", "").startswith("text/event-stream"):
            pytest.skip(f"this server does not stream yet (GET /events answered {response.status_code})")


def test_create_get_and_list_sessions(api: SessionsClient) -> None:
    user = unique_user()
    first = api.create_session(DEFAULT_AGENT_ID, user, metadata={"platform": "cli"},
                               timeout_config={"timeoutMinutes": 60})
    second = api.create_session(DEFAULT_AGENT_ID, user)

    fetched = api.get_session(first.session_id)
    page = api.list_sessions(user_id=user, limit=1)
    rest = api.list_sessions(user_id=user, limit=1, cursor=page.next_cursor)

    assert fetched.session_id == first.session_id and fetched.metadata == {"platform": "cli"}
    assert fetched.timeout_config.timeout_minutes == 60 and fetched.status == "active"
    assert page.has_more and {page.sessions[0].session_id, rest.sessions[0].session_id} == \
        {first.session_id, second.session_id}
    assert page.stats.total == 2


def test_send_returns_the_reply_with_the_user_message(api: SessionsClient, session_id: str) -> None:
    reply = api.send(session_id, "Hello, I am feeling anxious", idempotency_key=str(uuid.uuid4()))

    assert isinstance(reply, ReplyPublic)
    assert reply.is_agent and reply.content and reply.reply_to == reply.user_message.id
    assert reply.user_message.content == "Hello, I am feeling anxious"
    assert reply.session_status.status == "active"


def test_history_pages_through_every_message_newest_first(api: SessionsClient, session_id: str) -> None:
    for text in ("one", "two", "three"):
        api.send(session_id, text)

    messages = list(api.history(session_id, page_size=2))

    assert [m.seq for m in messages] == [6, 5, 4, 3, 2, 1]
    assert [m.content for m in messages if m.role == "user"] == ["three", "two", "one"]


def test_lifecycle_calls(api: SessionsClient, session_id: str) -> None:
    assert api.pause(session_id).status == "paused"
    with pytest.raises(SessionPaused) as paused:
        api.send(session_id, "are you there?")
    assert paused.value.status_code == 409 and paused.value.code == "SESSION_PAUSED"
    assert api.resume(session_id).status == "active"
    renewed = api.renew(session_id)
    assert renewed.renewal_count >= 1
    assert api.heartbeat(session_id).status == "active"
    assert api.update_timeout(session_id, timeout_minutes=45).timeout_config.timeout_minutes == 45

    assert api.end(session_id)["status"] == "ended"
    with pytest.raises(SessionEnded):
        api.send(session_id, "hello?")
    assert api.end(session_id, purge=True)["purged"] is True
    with pytest.raises(SessionNotFound):
        api.get_session(session_id)


def test_expired_session_raises_session_expired(api: SessionsClient, session_id: str, postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(update(sessions_table).where(sessions_table.c.id == uuid.UUID(session_id))
                     .values(expires_at=utcnow() - timedelta(minutes=1)))
    engine.dispose()

    with pytest.raises(SessionExpired) as expired:
        api.send(session_id, "still there?")
    assert expired.value.status_code == 410


def test_bad_input_raises_invalid_request(api: SessionsClient, session_id: str) -> None:
    with pytest.raises(InvalidRequest):
        api.send(session_id, "")
    with pytest.raises(InvalidRequest):
        api.get_session("not-a-uuid")
    with pytest.raises(SessionNotFound):
        api.get_session(uuid.uuid4())


def test_agents_are_listed_and_created(api: SessionsClient) -> None:
    name = f"agent-{uuid.uuid4().hex[:8]}"

    created = api.create_agent(name, provider="echo")

    assert created.name == name and created.provider == "echo"
    assert name in [agent.name for agent in api.list_agents()]
    with pytest.raises(AgentNameTaken):
        api.create_agent(name)


def test_health(api: SessionsClient) -> None:
    assert api.health().status == "healthy"


def test_stream_yields_the_reply_events_in_order(api: SessionsClient, session_id: str) -> None:
    events = list(api.stream(session_id, "Hello there"))

    kinds = [event.type for event in events if not isinstance(event, MessageChunk)]
    assert kinds == ["message.created", "message.completed", "state.updated", "done"]
    created, completed = events[0], next(e for e in events if isinstance(e, MessageCompleted))
    assert isinstance(created, MessageCreated) and created.message.content == "Hello there"
    assert completed.reply_to == str(created.message.id) and completed.message.content
    assert isinstance(next(e for e in events if e.type == "state.updated"), StateUpdated)


def test_stream_delivers_chunks_that_add_up_to_the_reply(stack: Stack, api: SessionsClient,
                                                         session_id: str) -> None:
    require_sse(stack, session_id)

    events = list(api.stream(session_id, "I remember my childhood"))

    chunks = [event for event in events if isinstance(event, MessageChunk)]
    completed = next(event for event in events if isinstance(event, MessageCompleted))
    assert chunks and "".join(chunk.delta for chunk in chunks).strip() == completed.message.content.strip()
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert {chunk.message_id for chunk in chunks} == {str(completed.message.id)}


def test_events_resume_after_the_last_event_id(stack: Stack, api: SessionsClient, session_id: str) -> None:
    require_sse(stack, session_id)
    created, *_ = api.stream(session_id, "Hello")  # the whole reply: every durable event is stored
    assert isinstance(created, MessageCreated)

    replayed = list(itertools.islice(api.events(session_id, last_event_id=created.id, max_reconnects=0), 2))

    assert [event.type for event in replayed] == ["message.completed", "state.updated"]
    assert replayed[0].reply_to == str(created.message.id)


def test_async_client_covers_the_same_calls(stack: Stack) -> None:
    async def run() -> None:
        async with AsyncSessionsClient(stack.base_url, token="user-token") as api:
            agents = await api.list_agents()
            session = await api.create_session(agents[0].id, unique_user())
            sid = session.session_id
            assert (await api.get_session(sid)).status == "active"
            reply = await api.send(sid, "Hello")
            assert isinstance(reply, ReplyPublic) and reply.content
            kinds = [event.type async for event in api.stream(sid, "How are you?")
                     if not isinstance(event, MessageChunk)]
            assert kinds == ["message.created", "message.completed", "state.updated", "done"]
            assert [m.seq async for m in api.history(sid, page_size=3)] == [4, 3, 2, 1]
            assert (await api.pause(sid)).status == "paused"
            assert (await api.resume(sid)).status == "active"
            assert (await api.heartbeat(sid)).status == "active"
            assert (await api.renew(sid)).renewal_count >= 1
            assert (await api.update_timeout(sid, auto_renew=False)).timeout_config.auto_renew is False
            assert (await api.list_sessions(user_id=session.user_id)).stats.total == 1
            assert (await api.end(sid))["status"] == "ended"
            with pytest.raises(SessionEnded):
                await api.send(sid, "bye")

    asyncio.run(run())
