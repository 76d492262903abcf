"""Real service processes for end-to-end tests: the API server and Celery workers, on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

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

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, *args: str, port: int | None = None) -> Service:
        log_path = self.log_dir / f"{name}-{len(self.services)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "core.cli", *args], env={**os.environ, **self.env},
                                       stdout=log, stderr=subprocess.STDOUT)
        service = Service(name, process, log_path, port)
        self.services.append(service)
        return service

    def start_api(self, port: int | None = None) -> Service:
        """An API process on `port` (default: the stack's own port, the one `base_url` names)."""
        port = port or self.port
        service = self._spawn("api", "api", "--port", str(port), port=port)
        wait_until(lambda: self._healthy(service), 60, "the API to answer /health")
        return service

    def start_worker(self, concurrency: int = 4, pool: str = "threads", loglevel: str = "warning") -> Service:
        return self._spawn("worker", "worker", "--pool", pool, "--concurrency", str(concurrency), "--loglevel",
                           loglevel)

    def start_beat(self) -> Service:
        return self._spawn("beat", "beat", "--loglevel", "warning")

    def _healthy(self, service: Service) -> bool:
        if service.process.poll() is not None:
            raise AssertionError(f"the API exited early:\n{service.log_tail()}")
        try:
            return httpx.get(f"http://127.0.0.1:{service.port}/api/messaging/sessions/health",
                             timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {service.name} ---\n{service.log_tail()}" for service in self.services)
