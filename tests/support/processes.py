"""Real service processes for end-to-end tests: the API server and Celery workers, on free loopback ports."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.databases import REDIS_URL
from tests.support.openai_server import GOOD_KEY, WRONG_KEY


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_env(database_url: str, prefix: str, queue: str, **extra: str) -> dict[str, str]:
    """The environment of a stack's processes: its database, its Redis namespace and queue, any settings.

    Also the API keys of the local OpenAI-compatible server (`fake_openai`), named by test characters' apiKeyEnv.
    """
    return {"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix, "CELERY_QUEUE": queue,
            "ENVIRONMENT": "test", "MODEL_KEY_TEST_LLM": GOOD_KEY, "MODEL_KEY_TEST_LLM_WRONG": WRONG_KEY, **extra}


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll a condition until it holds, or fail after `timeout` seconds (no fixed sleeps in tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int | None = None  # where an API service listens
    metrics_port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish or hand anything back."""
        self.stop(signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Stack:
    """An API server and workers sharing one database and one Redis namespace."""

    env: dict[str, str]
    log_dir: Path
    port: int = field(default_factory=free_port)
    services: list[Service] = field(default_factory=list)
    cwd: Path | None = None  # where the processes run; a tree of another commit runs its own code from there
    cli_module: str = "agent_sessions.cli"  # the command line's module (core.cli before it moved out of core/)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, *args: str, port: int | None = None, metrics_port: int | None = None) -> Service:
        log_path = self.log_dir / f"{name}-{len(self.services)}.log"
        env = {**os.environ, **self.env}
        if metrics_port:
            env["WORKER_METRICS_PORT"] = str(metrics_port)
        with log_path.open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", self.cli_module, *args], env=env, cwd=self.cwd,
                                       stdout=log, stderr=subprocess.STDOUT)
        service = Service(name, process, log_path, port, metrics_port)
        self.services.append(service)
        return service

    def start_api(self, port: int | None = None) -> Service:
        """The stack's API on `self.port`, or another API process (same database and Redis) on `port`."""
        return self.start_apis(port or self.port)[0]

    def start_apis(self, *ports: int) -> list[Service]:
        """API processes on these ports, started together (each takes seconds to import and boot)."""
        services = [self._spawn("api", "api", "--port", str(port), port=port) for port in ports]
        for service in services:
            wait_until(functools.partial(self._healthy, service), 60,
                       f"the API on port {service.port} to answer /health")
        return services

    def start_worker(self, *args: str, loglevel: str = "info") -> Service:
        """A worker process; `args` go to `agent-sessions worker` (e.g. "--max-turns", "10")."""
        return self.start_worker_with("--loglevel", loglevel, *args)

    def start_worker_with(self, *args: str) -> Service:
        """A worker with exactly these command-line arguments (none: the CLI's own defaults)."""
        return self._spawn("worker", "worker", *args, metrics_port=free_port())

    def start_beat(self) -> Service:
        return self._spawn("beat", "beat", "--loglevel", "warning")

    def _healthy(self, service: Service) -> bool:
        if service.process.poll() is not None:
            raise AssertionError(f"the API exited early:\n{service.log_tail()}")
        try:
            return httpx.get(f"{service.base_url}/api/messaging/sessions/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    @contextlib.contextmanager
    def running(self, workers: int = 0) -> Iterator[Stack]:
        """Start `workers` workers and the API; print the services' logs if that fails; stop them all at the end."""
        try:
            for _ in range(workers):
                self.start_worker()
            self.start_api()
            yield self
        except BaseException:
            print(self.logs())
            raise
        finally:
            self.stop()

    def log_records(self, name: str) -> list[dict[str, Any]]:
        """The JSON log lines written so far by the services called `name` (other lines skipped)."""
        records = []
        for service in self.services:
            if service.name == name and service.log_path.exists():
                for line in service.log_path.read_text(errors="replace").splitlines():
                    if line.startswith("{"):
                        with contextlib.suppress(ValueError):
                            records.append(json.loads(line))
        return records

    def logs(self) -> str:
        return "\n".join(f"--- {service.name} ---\n{service.log_tail()}" for service in self.services)
