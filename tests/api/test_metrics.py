"""Metrics: after real traffic, the API's /metrics and the worker's metrics server show it."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.factories import create_session, send_message
from tests.support.processes import Stack, wait_until

MESSAGES_ROUTE = "/api/messaging/sessions/{session_id}/messages"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics[(name, frozenset(labels.items()))]


def test_api_metrics_count_requests_sessions_and_queue(stack: Stack, client: httpx.Client) -> None:
    session_id = create_session(client)["sessionId"]
    for text in ("Hello", "I feel a bit sad"):
        assert send_message(client, session_id, text).status_code == 201

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    metrics = samples(response.text)
    sent = value(metrics, "agent_sessions_http_request_duration_seconds_count",
                 method="POST", route=MESSAGES_ROUTE, status="201")
    assert sent >= 2
    total_seconds = value(metrics, "agent_sessions_http_request_duration_seconds_sum",
                          method="POST", route=MESSAGES_ROUTE, status="201")
    assert 0 < total_seconds < sent * 30
    assert value(metrics, "agent_sessions_sessions", status="active") >= 1
    assert value(metrics, "agent_sessions_sessions", status="paused") >= 0
    assert value(metrics, "agent_sessions_queue_depth", queue=stack.env["CELERY_QUEUE"]) >= 0
    # Other tests share this server and may still hold streams: only this test's sends are known finished.
    assert value(metrics, "agent_sessions_waiting_requests") == 0
    listeners = value(metrics, "agent_sessions_event_listeners")
    assert 0 <= value(metrics, "agent_sessions_open_streams") <= listeners


def test_worker_metrics_show_tasks_agent_time_and_queue_wait(stack: Stack, client: httpx.Client) -> None:
    session_id = create_session(client)["sessionId"]
    assert send_message(client, session_id, "Hello").status_code == 201
    worker = next(service for service in stack.services if service.name == "worker")

    def scrape() -> dict:
        return samples(httpx.get(f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=5).text)

    # The task's duration is recorded just after the reply is published: wait for it.
    wait_until(lambda: scrape().get(("agent_sessions_task_duration_seconds_count",
                                     frozenset({"task": "sessions.process", "state": "SUCCESS"}.items())), 0) >= 1,
               5, "the worker to record the task")
    metrics = scrape()
    tasks = value(metrics, "agent_sessions_task_duration_seconds_count", task="sessions.process", state="SUCCESS")
    task_seconds = value(metrics, "agent_sessions_task_duration_seconds_sum", task="sessions.process", state="SUCCESS")
    assert 0 < task_seconds < tasks * 30
    replies = value(metrics, "agent_sessions_agent_duration_seconds_count", provider="eliza")
    assert replies >= 1
    assert 0 < value(metrics, "agent_sessions_agent_duration_seconds_sum", provider="eliza") < replies * 5
    waited = value(metrics, "agent_sessions_queue_wait_seconds_count")
    assert waited >= 1
    assert 0 <= value(metrics, "agent_sessions_queue_wait_seconds_sum") < waited * 30


def test_waiting_requests_gauge_counts_a_send_in_flight(stack: Stack, client: httpx.Client) -> None:
    agent = client.post("/api/agents", json={"name": f"slow-{uuid.uuid4().hex[:8]}", "provider": "eliza",
                                             "settings": {"chunk_delay_ms": 300}})
    assert agent.status_code == 201, agent.text
    session_id = create_session(client, agentId=agent.json()["id"])["sessionId"]

    with ThreadPoolExecutor(1) as pool, httpx.Client(base_url=stack.base_url, timeout=60) as sender:
        reply = pool.submit(send_message, sender, session_id, "I have been thinking about my family a lot lately")

        def waiting() -> float:
            return value(samples(client.get("/metrics").text), "agent_sessions_waiting_requests")

        wait_until(lambda: waiting() >= 1, 10, "the send to be counted as waiting")
        during = samples(client.get("/metrics").text)
        assert value(during, "agent_sessions_event_listeners") >= 1
        assert reply.result(60).status_code == 201
    wait_until(lambda: waiting() == 0, 5, "the waiting gauge to drop back")
