"""Session routes over real HTTP: list and filters, lifecycle calls, purge, async send, debug details."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import create_engine, select

from core.models import DEFAULT_AGENT_ID, events_table
from tests.support.factories import SESSIONS, create_session, history, send_message, unique_user
from tests.support.processes import Stack, wait_until


def test_list_filters_by_user_and_pages_with_a_cursor(client: httpx.Client) -> None:
    user = unique_user()
    created = [create_session(client, userId=user)["sessionId"] for _ in range(3)]
    create_session(client)  # someone else's

    first = client.get(SESSIONS, params={"userId": user, "limit": 2}).json()
    second = client.get(SESSIONS, params={"userId": user, "limit": 2, "cursor": first["nextCursor"]}).json()

    listed = [s["sessionId"] for s in first["sessions"] + second["sessions"]]
    assert listed == list(reversed(created))
    assert first["hasMore"] is True and second["hasMore"] is False
    assert first["stats"] == {"total": 3, "byStatus": {"active": 3}}


def test_list_filters_by_status(client: httpx.Client) -> None:
    user = unique_user()
    ended = create_session(client, userId=user)["sessionId"]
    create_session(client, userId=user)
    client.delete(f"{SESSIONS}/{ended}")

    page = client.get(SESSIONS, params={"userId": user, "status": "ended"}).json()

    assert [s["sessionId"] for s in page["sessions"]] == [ended]


def test_pause_then_resume_restarts_the_idle_clock(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]

    paused = client.post(f"{SESSIONS}/{sid}/pause").json()
    resumed = client.post(f"{SESSIONS}/{sid}/resume").json()

    assert paused["status"] == "paused" and resumed["status"] == "active"
    assert resumed["timeRemaining"] > 29 * 60_000


def test_renew_and_heartbeat_extend_the_session(client: httpx.Client) -> None:
    session = create_session(client)
    sid = session["sessionId"]

    renewed = client.post(f"{SESSIONS}/{sid}/renew").json()
    beat = client.post(f"{SESSIONS}/{sid}/heartbeat").json()

    assert renewed["renewalCount"] == 1 and renewed["expiresAt"] > session["expiresAt"]
    assert beat["lastActivity"] >= renewed["lastActivity"]


def test_patch_timeout_merges_with_the_current_config(client: httpx.Client) -> None:
    sid = create_session(client, timeoutConfig={"timeoutMinutes": 60, "autoRenew": False})["sessionId"]

    patched = client.patch(f"{SESSIONS}/{sid}/timeout", json={"warningThresholdMinutes": 10}).json()

    assert patched["timeoutConfig"] == {"timeoutMinutes": 60, "autoRenew": False, "maxDurationMinutes": 720,
                                        "warningThresholdMinutes": 10}


def test_purge_erases_the_session_and_its_history(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]
    send_message(client, sid, "forget me")

    assert client.delete(f"{SESSIONS}/{sid}", params={"purge": "true"}).json()["purged"] is True
    assert client.get(f"{SESSIONS}/{sid}").status_code == 404
    assert client.get(f"{SESSIONS}/{sid}/messages").status_code == 404


def test_websocket_transport_answers_202_and_the_reply_is_stored_later(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]

    accepted = send_message(client, sid, "Reply when you can", transport="websocket")

    assert accepted.status_code == 202
    assert accepted.json()["userMessage"]["content"] == "Reply when you can"
    wait_until(lambda: len(history(client, sid)["messages"]) == 2, 30, "the reply to be stored")


def test_elizaos_mode_websocket_is_the_websocket_transport(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]

    accepted = send_message(client, sid, "Reply when you can", mode="websocket")

    assert accepted.status_code == 202 and accepted.json()["success"] is True
    assert accepted.json()["data"]["userMessage"] == accepted.json()["userMessage"]


def test_debug_header_on_session_creation_adds_ids_and_timings(client: httpx.Client) -> None:
    response = client.post(SESSIONS, json={"agentId": str(DEFAULT_AGENT_ID), "userId": unique_user()},
                           headers={"X-Debug": "true"})
    plain = create_session(client)

    assert response.status_code == 201
    debug = response.json()["debug"]
    assert debug["sessionId"] == response.json()["sessionId"] and debug["agentId"] == str(DEFAULT_AGENT_ID)
    assert debug["requestId"] == response.headers["X-Request-ID"] and debug["timings"]["createMs"] > 0
    assert plain["debug"] is None


def test_debug_header_adds_ids_and_timings(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]

    reply = send_message(client, sid, "Hello", headers={"X-Debug": "true"}).json()

    assert reply["debug"]["sessionId"] == sid
    assert {"acceptMs", "waitMs", "queueWaitMs", "agentMs", "dbMs"} <= set(reply["debug"]["timings"])


def test_health_reports_every_component_up(client: httpx.Client) -> None:
    health = client.get(f"{SESSIONS}/health").json()

    assert health["status"] == "healthy"
    assert {name: c["status"] for name, c in health["components"].items()} == {
        "database": "up", "redis": "up", "eventBus": "up"}


def test_every_change_is_a_durable_event_numbered_without_gaps(client: httpx.Client, stack: Stack) -> None:
    sid = create_session(client)["sessionId"]
    send_message(client, sid, "Hello")
    client.post(f"{SESSIONS}/{sid}/pause")
    client.post(f"{SESSIONS}/{sid}/resume")
    client.delete(f"{SESSIONS}/{sid}")

    engine = create_engine(stack.env["DATABASE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(select(events_table.c.seq, events_table.c.type)
                            .where(events_table.c.session_id == uuid.UUID(sid)).order_by(events_table.c.seq)).all()
    engine.dispose()

    assert [tuple(row) for row in rows] == [
        (1, "message.created"), (2, "message.completed"), (3, "state.updated"), (4, "session.paused"),
        (5, "session.resumed"), (6, "session.ended")]
