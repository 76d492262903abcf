"""The Procfile really starts the system: honcho runs `release`, then `web`, `worker` and `beat`, on the
local Postgres (a fresh scratch database) and Redis (a unique prefix); a message gets its reply."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.databases import REDIS_URL, scratch_postgres
from tests.support.factories import SESSIONS, create_session, send_message
from tests.support.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture()
def fresh_database(run_id: str) -> Iterator[str]:
    """An empty database: the Procfile's `release` must migrate and seed it."""
    with scratch_postgres(f"as_test_{run_id}_procfile", migrate=False) as url:
        yield url


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def honcho(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    # A session of its own, so stopping honcho's group stops exactly what this test started.
    return subprocess.Popen([str(BIN / "honcho"), "--no-colour", "-f", str(ROOT / "Procfile"), "-d", str(ROOT),
                             *args], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_procfile_release_then_web_worker_beat_answer_a_message(fresh_database: str, redis_prefix: str,
                                                                run_id: str, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DATABASE_URL": fresh_database,
           "REDIS_URL": REDIS_URL, "REDIS_PREFIX": f"{redis_prefix}procfile:", "CELERY_QUEUE": f"q-{run_id}-procfile",
           "HOST": "127.0.0.1", "ENVIRONMENT": "test"}
    log = tmp_path / "honcho.log"

    release = honcho(env, tmp_path / "release.log", "start", "release")
    assert release.wait(60) == 0, (tmp_path / "release.log").read_text()

    services = honcho(env, log, "start", "-p", str(port), "web", "worker", "beat")
    try:
        def healthy() -> bool:
            assert services.poll() is None, log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}{SESSIONS}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 60, "the Procfile's web process")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            session = create_session(client)  # the default agent exists: `release` migrated and seeded
            reply = send_message(client, session["sessionId"], "Hello from the Procfile")
        assert reply.status_code == 201, reply.text
        assert reply.json()["content"]
        output = log.read_text()
        assert "beat.1" in output and "worker.1" in output
    finally:
        if services.poll() is None:
            services.send_signal(signal.SIGTERM)
        try:
            services.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(services.pid, signal.SIGKILL)
            services.wait()
    output = log.read_text()
    for name in ("web.1", "worker.1", "beat.1"):
        assert f"{name} stopped" in output, output
    # honcho runs each process in its own group and reports it stopped when its shell exits; the program
    # itself finishes its graceful shutdown just after: wait until every group is empty.
    groups = [int(pid) for pid in re.findall(r"sending SIGTERM to \S+ \(pid (\d+)\)", output)]
    assert len(groups) == 3
    wait_until(lambda: not any(group_alive(group) for group in groups), 20, "every process to exit")
