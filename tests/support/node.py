"""Running Node clients (the real npm socket.io-client and @elizaos/api-client) from tests: install, start, read
their JSON lines."""

from __future__ import annotations

import itertools
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def node_client_package() -> Path:
    """tests/node with its npm dependencies installed (once, from its lockfile); skips without Node or npm."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are needed to run the tests of npm clients")
    dependencies = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    if not all((NODE_DIR / "node_modules" / name / "package.json").is_file() for name in dependencies):
        installed = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True,
                                   text=True, timeout=180)
        if installed.returncode != 0:
            pytest.skip(f"npm could not install tests/node's packages: {installed.stderr[-500:]}")
    return NODE_DIR


class NodeProcess:
    """A Node script printing one JSON object per line; closing its stdin tells it to stop."""

    def __init__(self, script: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(["node", str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, text=True)
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []  # every line, in order
        self._unclaimed: list[dict[str, Any]] = []  # read, not returned by `wait_for` yet
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self._lines.put(json.loads(line))

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def wait_for(self, matches: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        """The first line not returned before that matches (it may have been read already)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self._unclaimed:
                if matches(line):
                    self._unclaimed.remove(line)
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} from the Node client within {timeout} s; it printed {self.seen[-20:]}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(line)
            self._unclaimed.append(line)

    def emit(self, event: str, data: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Emits a socket.io event through the driver script and returns the server's acknowledgement."""
        self.send({"emit": event, "data": data})
        return self.wait_for(lambda line: line["kind"] == "ack" and line["payload"]["event"] == event, timeout,
                             f"the ack of {event}")["payload"]["ack"]

    def stop(self) -> str:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.stderr.read() if self.process.stderr else ""


class ClientCallFailed(Exception):
    """The ElizaOS client threw (its ApiError: `code`, `message`, `status`)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')} (HTTP {error.get('status')})")
        self.error = error


class ElizaClient(NodeProcess):
    """The official ElizaOS JavaScript client (`@elizaos/api-client`), driven by tests/node/elizaos-client-driver.mjs:
    `call("sessions.getMessages", sid, {...})` runs one client method; `type_errors(...)` checks values against the
    client's declared return types with TypeScript's compiler."""

    def __init__(self, base_url: str) -> None:
        super().__init__(node_client_package() / "elizaos-client-driver.mjs", {**os.environ, "SERVER_URL": base_url})
        self._ids = itertools.count()

    def _ask(self, command: dict[str, Any], timeout: float, what: str) -> dict[str, Any]:
        ident = next(self._ids)
        self.send({"id": ident, **command})
        return self.wait_for(lambda line: line.get("id") == ident, timeout, what)

    def call(self, method: str, *args: Any, timeout: float = 60) -> Any:
        answer = self._ask({"call": method, "args": list(args)}, timeout, method)
        if "error" in answer:
            raise ClientCallFailed(answer["error"])
        return answer["result"]

    def type_errors(self, values: list[tuple[str, str, Any]], timeout: float = 120) -> list[dict[str, str]]:
        """[(name, "service.method", what that method returned)] -> every TypeScript error, [] when none."""
        checks = [{"name": name, "call": method, "value": value} for name, method, value in values]
        return self._ask({"check": checks}, timeout, "the type check")["diagnostics"]
