"""Prometheus metrics of the worker (the API's are in `api/metrics.py`).

Each worker process serves its own `/metrics` on WORKER_METRICS_PORT (started by the worker when it is
ready). With the thread pool (our default) every task runs in that one process. With Celery's prefork
pool set PROMETHEUS_MULTIPROC_DIR (an empty directory) before the worker starts: children write their
samples there and the parent's server adds them up.
"""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

# Buckets from 5 ms to 2 min: agent calls range from the offline ELIZA (ms) to remote LLMs (tens of s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

TASK_DURATION = Histogram("agent_sessions_task_duration_seconds", "Celery task run time, by task and final state",
                          ["task", "state"], buckets=LATENCY_BUCKETS)
TASK_RETRIES = Counter("agent_sessions_task_retries_total", "Celery task retries (transient database/Redis errors)",
                       ["task"])
TASK_FAILURES = Counter("agent_sessions_task_failures_total", "Celery tasks that raised", ["task"])
AGENT_DURATION = Histogram("agent_sessions_agent_duration_seconds", "Time the agent took to produce a reply",
                           ["provider"], buckets=LATENCY_BUCKETS)
QUEUE_WAIT = Histogram("agent_sessions_queue_wait_seconds",
                       "From the user message being stored to a worker claiming it", buckets=LATENCY_BUCKETS)
TURNS_RUNNING = Gauge("agent_sessions_turns_running", "Turns (agent generations) running in this process")
PUBLISH_FAILURES = Counter("agent_sessions_publish_failures_total",
                           "Event batches Redis refused (durable events in them are sent again, in order)")
MESSAGE_FAILURES = Counter("agent_sessions_message_failures_total", "User messages that ended `failed`, by reason",
                           ["code"])


def serve_worker_metrics(port: int, host: str) -> None:
    """Serve this worker's metrics over HTTP (a daemon thread)."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    start_http_server(port, addr=host, registry=registry)
