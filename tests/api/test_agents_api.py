"""Managing agents over HTTP: characters validated with clear errors, merge-patch updates, guarded deletes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.factories import SESSIONS, create_session

AGENTS = "/api/agents"


def character(**settings: Any) -> dict[str, Any]:
    return {"name": f"agent-{uuid.uuid4().hex[:8]}", "provider": "openai",
            "settings": {"system": "You are helpful.", "model": {"name": "m", "baseUrl": "http://127.0.0.1:9/v1"},
                         **settings}}


def create_agent(client: httpx.Client, document: dict[str, Any]) -> dict[str, Any]:
    response = client.post(AGENTS, json=document)
    assert response.status_code == 201, response.text
    return response.json()


def test_created_agent_is_listed_and_fetched_as_written(client: httpx.Client) -> None:
    document = character(timeoutConfig={"timeoutMinutes": 90})

    agent = create_agent(client, document)

    assert agent["settings"] == document["settings"] and agent["provider"] == "openai"
    assert client.get(f"{AGENTS}/{agent['id']}").json() == agent
    summary = {key: value for key, value in agent.items() if key != "settings"}  # a list leaves settings out
    assert summary in client.get(AGENTS).json()["agents"]
    session = create_session(client, agentId=agent["id"])
    assert session["timeoutConfig"]["timeoutMinutes"] == 90  # the character's session defaults apply


@pytest.mark.parametrize(("document", "expected"), [
    (character(model={"name": "m", "temperature": 5}), "less than or equal to 2"),
    ({"name": "no-model", "provider": "openai"}, "provider 'openai' needs settings.model"),
    ({"name": "nul\u0000"}, "must not contain NUL"),
], ids=["out-of-range", "missing-model", "nul"])
def test_invalid_character_is_a_400_saying_what_is_wrong(client: httpx.Client, document: dict[str, Any],
                                                         expected: str) -> None:
    response = client.post(AGENTS, json=document)

    assert response.status_code == 400
    body = response.json()
    assert body["error"]["code"] == "INVALID_REQUEST" and expected in body["message"], body


def test_name_taken_is_a_409(client: httpx.Client) -> None:
    document = character()
    create_agent(client, document)

    response = client.post(AGENTS, json=document)

    assert response.status_code == 409 and response.json()["error"]["code"] == "AGENT_NAME_TAKEN"


def test_patch_merges_settings_and_validates_the_result(client: httpx.Client) -> None:
    agent = create_agent(client, character())
    url = f"{AGENTS}/{agent['id']}"

    patched = client.patch(url, json={"settings": {"model": {"temperature": 0.4}, "system": None}})
    invalid = client.patch(url, json={"settings": {"model": {"name": None}}})

    assert patched.status_code == 200, patched.text
    assert patched.json()["settings"] == {"model": {"name": "m", "baseUrl": "http://127.0.0.1:9/v1",
                                                    "temperature": 0.4}}
    assert invalid.status_code == 400 and "settings.model.name: Field required" in invalid.json()["message"]
    assert client.get(url).json() == patched.json()  # the invalid patch changed nothing, updatedAt included
    assert patched.json()["createdAt"] == agent["createdAt"] and patched.json()["updatedAt"] >= agent["updatedAt"]


def test_patch_to_a_taken_name_is_a_409(client: httpx.Client) -> None:
    first, second = create_agent(client, character()), create_agent(client, character())

    response = client.patch(f"{AGENTS}/{second['id']}", json={"name": first["name"]})

    assert response.status_code == 409


def test_unknown_agent_is_a_404_for_every_method(client: httpx.Client) -> None:
    url = f"{AGENTS}/{uuid.uuid4()}"

    statuses = [client.get(url).status_code, client.patch(url, json={"name": "x"}).status_code,
                client.delete(url).status_code]

    assert statuses == [404, 404, 404]


def test_agent_with_sessions_is_deleted_only_with_force_which_purges_them(client: httpx.Client) -> None:
    agent = create_agent(client, character())
    session = create_session(client, agentId=agent["id"])
    url = f"{AGENTS}/{agent['id']}"

    refused = client.delete(url)
    forced = client.delete(url, params={"force": "true"})

    assert refused.status_code == 409 and refused.json()["error"]["code"] == "AGENT_IN_USE"
    assert refused.json()["error"]["details"] == {"agentId": agent["id"], "sessions": 1, "liveSessions": 1}
    assert forced.status_code == 200 and forced.json() == {"success": True, "agentId": agent["id"],
                                                           "deletedSessions": 1, "data": {"success": True}}
    assert client.get(url).status_code == 404
    assert client.get(f"{SESSIONS}/{session['sessionId']}").status_code == 404


def test_agent_without_sessions_is_deleted(client: httpx.Client) -> None:
    agent = create_agent(client, character())

    response = client.delete(f"{AGENTS}/{agent['id']}")

    assert response.status_code == 200 and response.json()["deletedSessions"] == 0
