"""`agent-sessions api` refuses to serve an open or guessable production API; `dev`/`test` and an explicit
ALLOW_UNAUTHENTICATED=true still run open, loudly (real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import Stack, free_port, stack_env


def run_api(env: dict[str, str], log_dir: Path) -> tuple[int, str]:
    """Start the API and let it run until it exits by itself; (exit code, output)."""
    log = log_dir / "api.log"
    with log.open("wb") as out:
        process = subprocess.run([sys.executable, "-m", "agent_sessions.cli", "api", "--port", str(free_port())],
                                 env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, timeout=60)
    return process.returncode, log.read_text()


@pytest.mark.parametrize(("extra", "says"), [
    ({}, "refusing to serve the API without authentication in ENVIRONMENT=production"),
    ({"AGENT_SESSIONS_API_KEY": "secret"}, "AGENT_SESSIONS_API_KEY is too weak"),
    ({"AGENT_SESSIONS_API_KEY": "test-server-key-0123456789abcdef", "JWT_SECRET": "a"}, "JWT_SECRET is too weak"),
], ids=["no key", "weak key", "weak jwt secret"])
def test_production_api_does_not_start_open_or_with_a_weak_secret(
        sqlite_url: str, redis_prefix: str, tmp_path: Path, extra: dict[str, str], says: str) -> None:
    env = stack_env(sqlite_url, f"{redis_prefix}refused:", "q-refused", ENVIRONMENT="production", **extra)

    code, output = run_api(env, tmp_path)

    assert code != 0
    assert says in output and 'python -c \\"import secrets; print(secrets.token_urlsafe(32))\\"' in output
    assert "Traceback" not in output


def test_production_api_runs_open_only_when_told_and_says_so_loudly(
        sqlite_url: str, redis_prefix: str, tmp_path: Path) -> None:
    env = stack_env(sqlite_url, f"{redis_prefix}open:", "q-open", ENVIRONMENT="production",
                    ALLOW_UNAUTHENTICATED="true")

    with Stack(env=env, log_dir=tmp_path).running() as stack:
        records = stack.log_records("api")

    loud = [r for r in records if r.get("level") == "critical" and "AUTHENTICATION IS OFF" in r.get("event", "")]
    assert loud, records
