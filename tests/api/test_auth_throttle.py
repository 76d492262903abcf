"""Failed authentications are logged with the client's address and throttled per address (real API process,
rate limits on, its own Redis namespace: the throttled address is this machine's loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.factories import SESSIONS
from tests.support.processes import Stack, stack_env
from tests.support.tokens import AUTH_ENV, SERVER, bearer, user_token

LIMIT = 3


@pytest.fixture(scope="module")
def throttled(postgres_url: str, redis_prefix: str, run_id: str,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = stack_env(postgres_url, f"{redis_prefix}throttle:", f"q-{run_id}-throttle", ENVIRONMENT="production",
                    RATE_LIMIT_ENABLED="true", RATE_LIMIT_AUTH_FAILURES_PER_ADDRESS=str(LIMIT), **AUTH_ENV)
    with Stack(env=env, log_dir=Path(tmp_path_factory.mktemp("throttle-stack"))).running() as stack:
        yield stack


def test_repeated_failures_are_logged_with_the_address_then_the_address_is_refused(throttled: Stack) -> None:
    with httpx.Client(base_url=throttled.base_url, timeout=30) as http:
        missing = http.get(SESSIONS)  # no credentials: nothing guessed, not counted
        expired = http.get(SESSIONS, headers=bearer(user_token("alice", expires_in=-120)))  # genuine: not counted
        guesses = [http.get(SESSIONS, headers={"X-API-KEY": f"guess-{n}"}).status_code for n in range(LIMIT)]
        over = http.get(SESSIONS, headers={"X-API-KEY": "one-guess-too-many"})
        right_key = http.get(SESSIONS, headers=SERVER)

    assert (missing.status_code, expired.status_code, guesses) == (401, 401, [401] * LIMIT)
    assert over.status_code == 429 and over.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert int(over.headers["Retry-After"]) >= 1
    assert right_key.status_code == 429  # a refused address gets nothing, not even by guessing right
    failures = [r for r in throttled.log_records("api") if r.get("event") == "authentication failed"]
    counted = [r for r in failures if r["level"] == "warning"]
    assert len(counted) == LIMIT + 1 and {r["client"] for r in failures} == {"127.0.0.1"}
    assert all(r["code"] == "UNAUTHORIZED" and "guess" not in str(r) for r in counted)  # never the credential
