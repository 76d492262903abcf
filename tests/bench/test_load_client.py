"""The benchmarks' load client (tests/bench/load_client.py) against the load model server: what it counts as
answered, the first-token delay it reads from the stamp, and the deadline."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest

from tests.bench.load_client import Request, run_load
from tests.support import load_model
from tests.support.load_model import LoadModelProcess


@pytest.fixture(scope="module")
def server() -> Iterator[LoadModelProcess]:
    with load_model.running() as running:
        yield running


def completion(server: LoadModelProcess, model: str, stream: bool, marker: bytes) -> Request:
    body = json.dumps({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}).encode()
    return Request(f"{server.base_url}/chat/completions", body, ok_marker=marker)


def test_streams_read_to_their_end_are_answered_with_the_first_token_delay(server: LoadModelProcess) -> None:
    requests = [completion(server, "load-ttft20-n30-gap1-stamp", True, b"data: [DONE]")] * 20

    run = run_load(requests, deadline_s=60)

    assert [o.answered for o in run.outcomes] == [True] * 20 and run.timed_out == 0
    assert all(o.status == 200 and o.first_token_delay_ms >= 0 for o in run.outcomes)
    assert run.cpu_s >= 0 and run.wall_s > 0


def test_a_body_with_a_content_length_is_read_whole(server: LoadModelProcess) -> None:
    run = run_load([completion(server, "load-ttft1-n3-gap0", False, b'"finish_reason": "stop"')], deadline_s=60)

    assert run.outcomes[0].answered and run.outcomes[0].status == 200
    assert math.isnan(run.outcomes[0].first_token_delay_ms)  # no stamp asked


def test_a_reply_without_its_marker_or_status_is_not_answered(server: LoadModelProcess) -> None:
    wrong_marker = completion(server, "load-ttft1-n3-gap0", True, b"event: done")
    error = Request(f"{server.base_url}/chat/completions", b"{not json", ok_marker=b"")

    run = run_load([wrong_marker, error], deadline_s=60)

    assert [o.answered for o in run.outcomes] == [False, False]
    assert [o.status for o in run.outcomes] == [200, 400]


def test_sends_unanswered_at_the_deadline_are_counted_as_such(server: LoadModelProcess) -> None:
    requests = [completion(server, "load-ttft3600000-stamp", True, b"data: [DONE]")] * 3  # an hour to the first token

    run = run_load(requests, deadline_s=0.5)

    assert run.timed_out == 3 and not any(o.answered for o in run.outcomes)
    assert all("no complete response within 0.5 s" in o.error for o in run.outcomes)
