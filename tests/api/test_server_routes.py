"""The ElizaOS server routes an ElizaOS web client calls when it starts: `/api/server/ping` and `/health`."""

from __future__ import annotations

import time

import httpx


def test_ping_answers_pong_and_the_time(client: httpx.Client) -> None:
    response = client.get("/api/server/ping")

    assert response.status_code == 200
    assert response.json()["pong"] is True and abs(response.json()["timestamp"] - time.time() * 1000) < 60_000


def test_server_health_reports_the_sessions_health_checks(client: httpx.Client) -> None:
    health = client.get("/api/server/health").json()
    sessions = client.get("/api/messaging/sessions/health").json()

    assert health["status"] == sessions["status"] == "healthy"
    assert set(health["checks"]) == set(sessions["components"]) == {"database", "redis", "eventBus"}
    assert all(check["status"] == "pass" for check in health["checks"].values())
    assert health["dependencies"] == {"agents": "healthy"} and health["agentCount"] >= 1
    assert health["version"] == sessions["version"] and health["uptime"] > 0
