"""Conversation state over real HTTP (API process + worker process), on SQLite and on Postgres:
the agent learns and uses the user's name, the per-exchange state history, and the dashboard stats."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from statistics import fmean
from typing import Any

import httpx

from core.clock import isoformat
from tests.support.factories import SESSIONS, create_session, send_message


def say(client: httpx.Client, session_id: str, content: str) -> dict[str, Any]:
    response = send_message(client, session_id, content)
    assert response.status_code == 201, response.text
    return response.json()


def state_history(client: httpx.Client, session_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"{SESSIONS}/{session_id}/state/history", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def stats(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get(f"{SESSIONS}/stats", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_eliza_learns_the_users_name_and_greets_them_by_it_later(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]  # the built-in ELIZA agent

    introduction = say(client, sid, "Hi, my name is Alice")
    greeting = say(client, sid, "Hello again")

    assert introduction["sessionStatus"]["state"]["preferences"] == {"name": "Alice"}
    # "Hello again" does not contain the name: ELIZA has it from the conversation state
    assert greeting["content"].startswith("Alice, "), greeting["content"]
    assert "addressing the user by name" in greeting["metadata"]["thought"]
    session = client.get(f"{SESSIONS}/{sid}").json()
    assert session["state"]["preferences"]["name"] == "Alice"
    assert session["state"]["turns"] == 2
    assert all(topic["topic"] != "alice" for topic in session["state"]["topics"])
    entries = state_history(client, sid)["entries"]
    assert [entry["messageId"] for entry in entries] == [greeting["userMessage"]["id"],
                                                         introduction["userMessage"]["id"]]
    assert [entry["preferences"] for entry in entries] == [{"name": "Alice"}, {"name": "Alice"}]
    assert [entry["intent"] for entry in entries] == ["greeting", "greeting"]


def test_state_history_has_one_entry_per_exchange_and_pages_by_seq(client: httpx.Client) -> None:
    sid = create_session(client)["sessionId"]
    replies = [say(client, sid, text) for text in (
        "Hello!", "My app keeps crashing when I upload photos", "Thanks, that fixed it!", "Bye!")]

    newest = state_history(client, sid, limit=3)
    older = state_history(client, sid, limit=3, before=newest["cursors"]["before"])

    entries = newest["entries"] + older["entries"]
    assert newest["hasMore"] is True and older["hasMore"] is False
    assert [entry["seq"] for entry in entries] == [7, 5, 3, 1]  # the user messages; replies have even seqs
    assert [entry["messageId"] for entry in entries] == [reply["userMessage"]["id"] for reply in reversed(replies)]
    assert [entry["stage"] for entry in reversed(entries)] == ["greeting", "discovery", "resolution", "closing"]
    assert [entry["intent"] for entry in reversed(entries)] == ["greeting", "statement", "gratitude", "farewell"]
    thanks = entries[1]
    assert thanks["sentiment"]["label"] == "positive" and thanks["runningSentiment"]["label"] == "positive"
    assert set(thanks["engagement"]) == {"level", "score"}
    assert thanks["agentConfidence"] == replies[2]["analysis"]["agentConfidence"]
    # each entry is what the reply reported as the session's state at that moment
    assert entries[0]["runningSentiment"] == replies[3]["sessionStatus"]["state"]["sentiment"]
    assert entries[0]["engagement"] == replies[3]["sessionStatus"]["state"]["engagement"]
    forward = state_history(client, sid, after=older["cursors"]["after"])
    assert [entry["seq"] for entry in forward["entries"]] == [7, 5, 3]


def new_agent(client: httpx.Client) -> str:
    response = client.post("/api/agents", json={"name": f"stats-{uuid.uuid4().hex[:10]}", "provider": "eliza"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_stats_count_sessions_by_stage_sentiment_and_engagement(client: httpx.Client) -> None:
    agent = new_agent(client)  # its own agent, so other tests' sessions do not count
    started = datetime.fromisoformat(create_session(client, agentId=agent)["createdAt"])  # never spoken in
    angry = create_session(client, agentId=agent)["sessionId"]
    angry_reply = say(client, angry, "This is ridiculous! Worst service ever, I want a refund now.")
    happy = create_session(client, agentId=agent)["sessionId"]
    say(client, happy, "Hello!")
    say(client, happy, "My export fails. Is there a fix?")
    say(client, happy, "Thanks, that fixed it, wonderful!")
    happy_state = client.get(f"{SESSIONS}/{happy}").json()["state"]
    assert client.delete(f"{SESSIONS}/{happy}").status_code == 200

    everything = stats(client, agentId=agent)

    assert everything["total"] == 3 and everything["withExchanges"] == 2
    assert everything["byStage"] == {"greeting": 1, "discovery": 1, "engaged": 0, "resolution": 1, "closing": 0}
    assert everything["bySentiment"] == {"positive": 1, "neutral": 1, "negative": 1, "mixed": 0}
    assert sum(everything["byEngagement"].values()) == 3
    angry_state = angry_reply["sessionStatus"]["state"]
    expected_confidence = fmean([angry_state["agentConfidence"], happy_state["agentConfidence"]])
    assert abs(everything["averageAgentConfidence"] - expected_confidence) < 0.002
    expected_score = fmean([angry_state["sentiment"]["score"], happy_state["sentiment"]["score"]])
    assert abs(everything["averageSentimentScore"] - expected_score) < 0.002
    assert everything["averageTurns"] == 2.0  # one exchange and three

    ended = stats(client, agentId=agent, status="ended")
    assert ended["total"] == 1 and ended["byStage"]["resolution"] == 1
    active = stats(client, agentId=agent, status="active")
    assert active["total"] == 2 and active["bySentiment"]["negative"] == 1
    later = started + timedelta(milliseconds=1)
    assert stats(client, agentId=agent, to=isoformat(later))["total"] == 1  # `to` is exclusive...
    assert stats(client, agentId=agent, to=str(int(started.timestamp() * 1000)))["total"] == 0
    assert stats(client, agentId=agent, **{"from": isoformat(started)})["total"] == 3  # ...`from` inclusive
    assert stats(client, agentId=agent, **{"from": str(int(later.timestamp() * 1000) + 3_600_000)})["total"] == 0


def test_stats_of_an_agent_without_sessions_are_zero(client: httpx.Client) -> None:
    empty = stats(client, agentId=new_agent(client))

    assert empty["total"] == 0 and empty["withExchanges"] == 0
    assert set(empty["byStage"].values()) == {0} and len(empty["byStage"]) == 5
    assert empty["averageAgentConfidence"] is None and empty["averageSentimentScore"] is None
