"""Prometheus metrics of an API process, served at `/metrics`.

Request latency is observed by the request middleware; the connection gauges read the event hub and the
session/queue gauges are computed when scraped (one grouped COUNT over the status index, one LLEN).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest

from core.metrics import LATENCY_BUCKETS
from core.sessions.status import LIVE_STATUSES


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_duration = Histogram(
            "agent_sessions_http_request_duration_seconds", "HTTP request time, by route template and status",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.waiting_requests = Gauge(
            "agent_sessions_waiting_requests", "Blocking sends waiting for the agent's reply", registry=self.registry)
        self.event_listeners = Gauge(
            "agent_sessions_event_listeners", "Local listeners on the event hub: waiting requests, SSE and "
            "socket.io subscriptions", registry=self.registry)
        self.open_streams = Gauge(
            "agent_sessions_open_streams", "Open SSE and socket.io subscriptions (listeners that are not waiting "
            "requests)", registry=self.registry)
        self.sessions = Gauge("agent_sessions_sessions", "Sessions that can still take messages, by status",
                              ["status"], registry=self.registry)
        self.queue_depth = Gauge("agent_sessions_queue_depth", "Tasks waiting in the Celery queue", ["queue"],
                                 registry=self.registry)
        self._waiting = 0

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Count a request as waiting for a reply while inside the block."""
        self._waiting += 1
        self.waiting_requests.inc()
        try:
            yield
        finally:
            self._waiting -= 1
            self.waiting_requests.dec()

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.request_duration.labels(method, route, str(status)).observe(seconds)

    def render(self, *, listeners: int, sessions_by_status: dict[str, int], queue: str, queue_depth: int) -> bytes:
        self.event_listeners.set(listeners)
        self.open_streams.set(max(0, listeners - self._waiting))
        for status in LIVE_STATUSES:
            self.sessions.labels(status).set(sessions_by_status.get(status, 0))
        self.queue_depth.labels(queue).set(queue_depth)
        return generate_latest(self.registry)
