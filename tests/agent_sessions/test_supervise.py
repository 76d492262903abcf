"""The worker's supervisor, with real child processes: started again when it exits on its own, stopped on
request, and never left running without its supervisor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from tests.support.processes import wait_until

# Exits by itself (code 0, as Celery does after kombu's error) on its first two runs, then runs until SIGTERM.
CHILD = """
import os, signal, sys, pathlib
runs = pathlib.Path(sys.argv[1])
count = int(runs.read_text() or 0) + 1 if runs.exists() else 1
runs.write_text(str(count))
pathlib.Path(sys.argv[2]).write_text(f"{count} {os.getpid()}")
if count < 3:
    sys.exit(0)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.pause()
"""
SUPERVISOR = "import sys; from agent_sessions.supervise import supervise; sys.exit(supervise(sys.argv[1:]))"


def start_supervisor(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    runs, pid = tmp_path / "runs", tmp_path / "pid"
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, sys.executable, "-c", CHILD, str(runs), str(pid)])
    return supervisor, runs, pid


def runs_of(path: Path) -> int:
    return int(path.read_text() or 0) if path.exists() else 0


def test_a_worker_that_exits_on_its_own_is_started_again_until_asked_to_stop(tmp_path: Path) -> None:
    supervisor, runs, _ = start_supervisor(tmp_path)
    try:
        wait_until(lambda: runs_of(runs) == 3, 30, "the child's third run")

        supervisor.send_signal(signal.SIGTERM)

        assert supervisor.wait(30) == 0
        assert runs_of(runs) == 3
    finally:
        supervisor.kill()


def test_killing_the_supervisor_kills_the_worker(tmp_path: Path) -> None:
    supervisor, _, pid = start_supervisor(tmp_path)
    wait_until(lambda: pid.exists() and pid.read_text().startswith("3 "), 30, "the child's third run")
    child = psutil.Process(int(pid.read_text().split()[1]))
    assert child.is_running()

    os.kill(supervisor.pid, signal.SIGKILL)

    supervisor.wait(10)
    wait_until(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 10, "the child to die")
