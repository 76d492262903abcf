"""Cold start: `agent-sessions dev` in an empty directory until the first reply arrives.

Baseline in the same run: the interpreter importing the API and the worker modules (the part of a start
no architecture can avoid). Run: .venv/bin/python tests/bench/bench_coldstart.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

import httpx
from common import print_table  # type: ignore[import-not-found]

from core.models import DEFAULT_AGENT_ID
from tests.support.processes import free_port, wait_until


def first_reply_seconds() -> float:
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="coldstart-")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "agent_sessions.cli", "dev", "--port", str(port)], cwd=workdir,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _up(base), 60, "dev to serve", interval=0.02)
        session = httpx.post(f"{base}/api/messaging/sessions",
                             json={"agentId": str(DEFAULT_AGENT_ID), "userId": "cold"}, timeout=30).json()
        reply = httpx.post(f"{base}/api/messaging/sessions/{session['sessionId']}/messages",
                           json={"content": "Hello"}, timeout=60)
        assert reply.status_code == 201, reply.text
        return time.perf_counter() - started
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/api/messaging/sessions/health", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def import_seconds() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import api.app, worker.tasks"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cold = sorted(first_reply_seconds() for _ in range(args.runs))
    imports = sorted(import_seconds() for _ in range(args.runs))
    median = cold[len(cold) // 2]
    baseline = imports[len(imports) // 2]
    print_table("Cold start (s, median of runs)", ["what", "seconds", "vs importing the code"],
                [["agent-sessions dev -> first reply", median, median / baseline],
                 ["python -c 'import api.app, worker.tasks'", baseline, 1.0]])


if __name__ == "__main__":
    main()
