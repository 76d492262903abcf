"""Timeout configuration over HTTP: precedence, PATCH merging, renewal at the maximum duration."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx

from tests.support.factories import SESSIONS, create_session, send_message


def create_agent(client: httpx.Client, settings: dict[str, Any]) -> httpx.Response:
    return client.post("/api/agents", json={"name": f"timeouts-{uuid.uuid4().hex[:8]}", "provider": "echo",
                                            "settings": settings})


def test_message_at_max_duration_is_answered_and_says_renewal_was_blocked(client: httpx.Client) -> None:
    session = create_session(client, timeoutConfig={"timeoutMinutes": 5, "maxDurationMinutes": 5})
    sid = session["sessionId"]

    reply = send_message(client, sid, "Still there?")
    renew = client.post(f"{SESSIONS}/{sid}/renew")

    assert reply.status_code == 201, reply.text
    status = reply.json()["sessionStatus"]
    assert reply.json()["content"]
    assert status["renewalBlocked"] is True and status["wasRenewed"] is False
    assert status["warning"]["code"] == "MAX_DURATION_EXCEEDED"
    assert status["expiresAt"] == session["expiresAt"]
    assert renew.status_code == 409 and renew.json()["error"]["code"] == "MAX_DURATION_EXCEEDED"


def test_message_with_room_to_renew_has_no_warning(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]

    status = send_message(client, sid, "Hello").json()["sessionStatus"]

    assert status["wasRenewed"] is True and status["renewalBlocked"] is False and status["warning"] is None


def test_patch_timeout_merges_with_the_current_config(client: httpx.Client) -> None:
    sid = create_session(client, timeoutConfig={"timeoutMinutes": 60, "autoRenew": False})["sessionId"]

    patched = client.patch(f"{SESSIONS}/{sid}/timeout", json={"warningThresholdMinutes": 10})

    assert patched.status_code == 200, patched.text
    assert patched.json()["timeoutConfig"] == {"timeoutMinutes": 60, "autoRenew": False, "maxDurationMinutes": 720,
                                               "warningThresholdMinutes": 10}
    created = datetime.fromisoformat(patched.json()["createdAt"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(patched.json()["expiresAt"].replace("Z", "+00:00"))
    assert timedelta(minutes=59) < expires - created <= timedelta(minutes=61)


def test_agent_timeout_defaults_sit_between_environment_and_request(client: httpx.Client) -> None:
    agent = create_agent(client, {"timeoutConfig": {"timeoutMinutes": 45, "warningThresholdMinutes": 7}})
    assert agent.status_code == 201, agent.text
    agent_id = agent.json()["id"]

    from_agent = create_session(client, agentId=agent_id)["timeoutConfig"]
    from_request = create_session(client, agentId=agent_id, timeoutConfig={"timeoutMinutes": 20})["timeoutConfig"]

    assert from_agent == {"timeoutMinutes": 45, "autoRenew": True, "maxDurationMinutes": 720,
                          "warningThresholdMinutes": 7}
    assert from_request == {"timeoutMinutes": 20, "autoRenew": True, "maxDurationMinutes": 720,
                            "warningThresholdMinutes": 7}


def test_agent_with_out_of_bounds_timeout_defaults_is_refused(client: httpx.Client) -> None:
    response = create_agent(client, {"timeoutConfig": {"timeoutMinutes": 2}})

    assert response.status_code == 400
    assert "timeoutConfig" in response.text


def test_request_outside_elizaos_bounds_is_refused(client: httpx.Client) -> None:
    response = client.post(SESSIONS, json={"agentId": create_session(client)["agentId"], "userId": "bounds-user",
                                           "timeoutConfig": {"timeoutMinutes": 1441}})

    assert response.status_code == 400
