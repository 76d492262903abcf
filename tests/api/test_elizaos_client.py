"""The official ElizaOS JavaScript client (`@elizaos/api-client` 1.7, from npm) against a real API and worker.

Every `SessionsService` method, `agents.listAgents()` and the server routes an ElizaOS app calls on start are
called through the client; what each returned is then checked by TypeScript's compiler against the return type
the client itself declares for that method (tests/node/elizaos-client-driver.mjs). History is paged through
the client with only what the server hands out.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.clock import epoch_millis, moment_of, utcnow
from core.models import DEFAULT_AGENT_ID
from tests.support.databases import prepare, scratch_postgres
from tests.support.factories import store_answered_messages
from tests.support.node import ClientCallFailed, ElizaClient
from tests.support.processes import Stack, stack_env, wait_until

AGENT = str(DEFAULT_AGENT_ID)
ATTACHMENT = {"type": "image", "url": "https://example.com/receipt.png", "name": "receipt.png", "mimeType": "image/png"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def eliza_stack(request: pytest.FixtureRequest, redis_prefix: str, run_id: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API and a worker with a database of their own: `listSessions()` lists every session, and these are
    all made by the ElizaOS client (its types declare UUID user ids, which we do not require)."""
    backend = request.param
    logs = Path(tmp_path_factory.mktemp(f"eliza-{backend}"))
    if backend == "postgres":
        database: AbstractContextManager[str] = scratch_postgres(f"as_eliza_{run_id}")
    else:
        prepare(url := f"sqlite:///{logs / 'eliza.db'}")
        database = nullcontext(url)
    with database as database_url:
        env = stack_env(database_url, f"{redis_prefix}eliza-{backend}:", f"q-{run_id}-eliza-{backend}")
        with Stack(env=env, log_dir=logs).running(workers=1) as stack:
            yield stack


@pytest.fixture(scope="module")
def eliza(eliza_stack: Stack) -> Iterator[ElizaClient]:
    client = ElizaClient(eliza_stack.base_url)
    yield client
    client.stop()


@pytest.fixture(scope="module")
def recorded(eliza: ElizaClient) -> dict[str, tuple[str, Any]]:
    """What each call returned, as an ElizaOS app makes them: name -> (client method, result)."""
    calls: dict[str, tuple[str, Any]] = {}

    def record(name: str, method: str, *args: Any) -> Any:
        calls[name] = (method, eliza.call(method, *args))
        return calls[name][1]

    record("serverPing", "server.ping")
    record("serverHealth", "server.checkHealth")
    record("checkHealth", "sessions.checkHealth")
    record("listAgents", "agents.listAgents")
    created = record("createSession", "sessions.createSession",
                     {"agentId": AGENT, "userId": str(uuid.uuid4()),
                      "metadata": {"platform": "web", "username": "ada"}})
    sid = created["sessionId"]
    record("getSession", "sessions.getSession", sid)
    # No transport: ours blocks for the reply (what the guide's examples expect); ElizaOS's answers at once.
    record("sendMessage", "sessions.sendMessage", sid,
           {"content": "Hello, I need help with my account", "metadata": {"source": "web", "tags": ["billing"]}})
    record("sendMessageHttp", "sessions.sendMessage", sid, {"content": "My name is Ada", "transport": "http"})
    record("sendMessageSync", "sessions.sendMessageSync", sid,
           {"content": "I am upset about this invoice", "attachments": [ATTACHMENT]})
    record("sendMessageWebsocket", "sessions.sendMessage", sid, {"content": "Are you there?", "transport": "websocket"})
    wait_until(lambda: len(eliza.call("sessions.getMessages", sid)["messages"]) == 8, 30,
               "the websocket message's reply")
    record("getMessages", "sessions.getMessages", sid, {"limit": 20})
    record("listSessions", "sessions.listSessions")
    record("deleteSession", "sessions.deleteSession", sid)
    return calls


def result(recorded: dict[str, tuple[str, Any]], name: str) -> Any:
    return recorded[name][1]


def test_every_result_has_the_type_the_client_declares(eliza: ElizaClient,
                                                       recorded: dict[str, tuple[str, Any]]) -> None:
    errors = eliza.type_errors([(name, method, value) for name, (method, value) in recorded.items()])

    assert errors == []


def test_a_value_outside_the_declared_types_is_reported(eliza: ElizaClient,
                                                        recorded: dict[str, tuple[str, Any]]) -> None:
    # The same check catches what the server answered before this fix: the agent message at the top level
    # without `success` (so the client handed it back as it was, with no `userMessage`).
    method, reply = recorded["sendMessageHttp"]
    before_the_fix = {key: value for key, value in reply.items() if key not in ("success", "userMessage")}

    [error] = eliza.type_errors([("sendMessageHttp", method, before_the_fix)])

    assert error["name"] == "sendMessageHttp" and "userMessage" in error["message"]


def test_blocking_sends_answer_the_agent_response(recorded: dict[str, tuple[str, Any]]) -> None:
    stored = result(recorded, "getMessages")["messages"]
    for name in ("sendMessage", "sendMessageHttp", "sendMessageSync"):
        sent = result(recorded, name)
        assert sent["success"] is True and sent["agentResponse"]["text"], name
        assert sent["agentResponse"]["text"] in [m["content"] for m in stored if m["isAgent"]]
        assert sent["userMessage"]["id"] in [m["id"] for m in stored if not m["isAgent"]]
        assert sent["sessionStatus"]["wasRenewed"] is True
    assert result(recorded, "sendMessage")["userMessage"]["metadata"] == {"source": "web", "tags": ["billing"]}


def test_attachments_are_kept_beside_flat_metadata(recorded: dict[str, tuple[str, Any]]) -> None:
    user_message = result(recorded, "sendMessageSync")["userMessage"]
    [stored] = [m for m in result(recorded, "getMessages")["messages"] if m["id"] == user_message["id"]]

    assert user_message["attachments"] == [ATTACHMENT] and "attachments" not in user_message["metadata"]
    assert stored["attachments"] == [ATTACHMENT] and stored["analysis"]["stage"]


def test_websocket_send_answers_success_at_once(recorded: dict[str, tuple[str, Any]]) -> None:
    sent = result(recorded, "sendMessageWebsocket")

    assert sent["success"] is True and sent["userMessage"]["content"] == "Are you there?"
    assert "agentResponse" not in sent


def test_list_sessions_counts_total(recorded: dict[str, tuple[str, Any]]) -> None:
    listed = result(recorded, "listSessions")

    assert listed["total"] == len(listed["sessions"]) >= 1
    assert result(recorded, "createSession")["sessionId"] in [s["sessionId"] for s in listed["sessions"]]


def test_list_agents_gives_bio_status_and_updated_at(recorded: dict[str, tuple[str, Any]]) -> None:
    [eliza] = [agent for agent in result(recorded, "listAgents")["agents"] if agent["id"] == AGENT]

    assert eliza["name"] == "Eliza" and eliza["status"] == "active" and eliza["bio"]
    assert eliza["updatedAt"] >= eliza["createdAt"] > 1_600_000_000_000  # epoch milliseconds


def test_delete_session_answers_success(recorded: dict[str, tuple[str, Any]], eliza: ElizaClient) -> None:
    sid = result(recorded, "createSession")["sessionId"]

    assert result(recorded, "deleteSession")["success"] is True
    assert eliza.call("sessions.getSession", sid)["status"] == "ended"  # ended sessions stay readable


def test_server_ping_and_health(recorded: dict[str, tuple[str, Any]]) -> None:
    assert result(recorded, "serverPing")["pong"] is True
    health = result(recorded, "serverHealth")
    assert health["status"] == "healthy" and health["checks"]["database"]["status"] == "pass"
    assert result(recorded, "checkHealth")["status"] == "healthy"


def test_errors_reach_the_client_with_their_code(eliza: ElizaClient) -> None:
    with pytest.raises(ClientCallFailed) as failed:
        eliza.call("sessions.getSession", str(uuid.uuid4()))

    assert failed.value.error["code"] == "SESSION_NOT_FOUND" and failed.value.error["status"] == 404


def new_session(eliza: ElizaClient) -> str:
    return eliza.call("sessions.createSession", {"agentId": AGENT, "userId": str(uuid.uuid4())})["sessionId"]


MAX_PAGES = 40  # a cursor the client cannot pass back would otherwise page forever


def page_forward(eliza: ElizaClient, sid: str, after: Any, limit: int) -> list[str]:
    """Every message after `after`, oldest first, each next page from the last page's `cursors.after`."""
    seen: list[str] = []
    for _ in range(MAX_PAGES):
        page = eliza.call("sessions.getMessages", sid, {"after": after, "limit": limit})
        seen += [message["id"] for message in reversed(page["messages"])]
        if not page["hasMore"]:
            break
        after = page["cursors"]["after"]
    return seen


def page_back(eliza: ElizaClient, sid: str, limit: int) -> list[str]:
    """Every message, newest first, each next page from the last page's `cursors.before`."""
    seen: list[str] = []
    page = eliza.call("sessions.getMessages", sid, {"limit": limit})
    for _ in range(MAX_PAGES):
        seen += [message["id"] for message in page["messages"]]
        if not page["hasMore"]:
            break
        page = eliza.call("sessions.getMessages", sid, {"before": page["cursors"]["before"], "limit": limit})
    return seen


def test_paging_by_cursors_is_exact_when_many_messages_share_a_millisecond(eliza: ElizaClient,
                                                                          eliza_stack: Stack) -> None:
    sid = new_session(eliza)
    eliza.call("sessions.sendMessageSync", sid, {"content": "Hello"})
    start = moment_of(epoch_millis(utcnow()) + 2)  # a millisecond to come, all theirs
    # 25 messages in one millisecond, some at the very same microsecond, their microseconds not in seq order.
    tied = store_answered_messages(eliza_stack.env["DATABASE_URL"], sid,
                                   [start + timedelta(microseconds=(n * 37) % 5 * 100) for n in range(25)])
    eliza.call("sessions.sendMessageSync", sid, {"content": "Goodbye"})
    everything = [m["id"] for m in reversed(eliza.call("sessions.getMessages", sid, {"limit": 100})["messages"])]
    assert len(everything) == 29 and everything[2:27] == tied

    forward = page_forward(eliza, sid, {"$date": "2000-01-01T00:00:00Z"}, limit=4)
    back = page_back(eliza, sid, limit=4)

    assert forward == everything
    assert back == everything[::-1]


def test_a_message_timestamp_bounds_a_page_without_repeating_the_message(eliza: ElizaClient,
                                                                        eliza_stack: Stack) -> None:
    sid = new_session(eliza)
    start = moment_of(epoch_millis(utcnow()) + 2)
    # One millisecond apart, each half-way through its millisecond: the ISO form shows less than is stored.
    stored = store_answered_messages(eliza_stack.env["DATABASE_URL"], sid,
                                     [start + timedelta(milliseconds=n, microseconds=500) for n in range(6)])
    messages = list(reversed(eliza.call("sessions.getMessages", sid, {"limit": 10})["messages"]))
    created = [message["createdAt"] for message in messages]

    forward = [[m["id"] for m in eliza.call("sessions.getMessages", sid, {"after": at, "limit": 1})["messages"]]
               for at in created]
    back = [[m["id"] for m in
             eliza.call("sessions.getMessages", sid, {"before": {"$date": at}, "limit": 1})["messages"]]
            for at in created]
    between = eliza.call("sessions.getMessages", sid, {"after": created[1], "before": created[4]})["messages"]

    assert forward == [[following] for following in stored[1:]] + [[]]
    assert back == [[]] + [[preceding] for preceding in stored[:-1]]
    assert [m["id"] for m in between] == [stored[3], stored[2]]
