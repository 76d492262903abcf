"""Throwaway PostgreSQL and Redis servers on free loopback ports, for the fault harness to restart at will.

They are separate from the machine's shared servers, so stopping them disturbs nobody else.
Postgres refuses to run as root: when we are root, its commands run as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import free_port, wait_until


def postgres_bin_dir() -> Path:
    """The newest Debian PostgreSQL install (`/usr/lib/postgresql/<version>/bin`), else whatever is on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("initdb not found: install PostgreSQL server binaries")
    return Path(initdb).parent


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass
class PostgresServer:
    root: Path
    port: int = field(default_factory=free_port)
    bin_dir: Path = field(default_factory=postgres_bin_dir)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(_as_postgres([str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U",
                                     "postgres", "-E", "UTF8", "--no-sync"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> None:
        # fsync off: the harness restarts processes, never the machine, so the OS cache keeps every commit.
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
                   "-c max_connections=200")
        subprocess.run(_as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l",
                                     str(self.root / "postgres.log"), "-w", "-t", "60", "-o", options, "start"]),
                       check=True, stdout=subprocess.DEVNULL)

    def stop(self, mode: str = "fast") -> None:
        """`fast` closes client connections cleanly; `immediate` is a crash (recovery replays the WAL)."""
        subprocess.run(_as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w",
                                     "stop"]), check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @property
    def pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            return int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None


@dataclass
class RedisServer:
    root: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found")
        # No persistence, as in a cache-style deployment: a restart loses the queue, the locks, the streams.
        with (self.root / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.root), "--loglevel", "warning"], stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: _port_open(self.port), 10, "redis-server to listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
