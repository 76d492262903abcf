"""PROCESSING=inline: the API answers by itself, with no worker and no queue (the benchmarks' baseline)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.factories import create_session, send_message
from tests.support.processes import Stack, stack_env


@pytest.fixture(scope="module")
def inline_stack(sqlite_url: str, redis_prefix: str, run_id: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(env=stack_env(sqlite_url, f"{redis_prefix}inline:", f"q-{run_id}-inline", PROCESSING="inline"),
                  log_dir=Path(tmp_path_factory.mktemp("inline")))
    stack.start_api()
    yield stack
    stack.stop()


def test_inline_api_replies_without_any_worker(inline_stack: Stack, redis_client) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=inline_stack.base_url, timeout=30) as http:
        session = create_session(http)
        reply = send_message(http, session["sessionId"], "Hello there")

    assert reply.status_code == 201 and reply.json()["content"]
    assert redis_client.llen(inline_stack.env["REDIS_PREFIX"] + inline_stack.env["CELERY_QUEUE"]) == 0
