"""The load model server (tests/support/load_model.py) as its clients see it: a real openai SDK client, raw
sockets for thousands of streams, its stats endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from tests.support import load_model
from tests.support.load_model import LoadModelProcess, reply_text, stamp_of, token_text
from tests.support.processes import wait_until


@pytest.fixture(scope="module")
def server() -> Iterator[LoadModelProcess]:
    with load_model.running("--ttft-ms", "20", "--tokens", "5", "--gap-ms", "2") as running:
        yield running


@pytest.fixture()
def sdk(server: LoadModelProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="any", max_retries=0) as client:
        yield client


def chat(model: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_the_sdk_streams_a_reply_of_the_tokens_the_model_name_asks_for(sdk: openai.OpenAI) -> None:
    with sdk.chat.completions.create(stream=True, **chat("load-ttft10-n7-gap1")) as stream:
        chunks = list(stream)

    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == [token_text(i) for i in range(7)]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_request_fields_override_the_model_name(sdk: openai.OpenAI) -> None:
    with sdk.chat.completions.create(stream=True, extra_body={"tokens": 3, "gap_ms": 0},
                                     **chat("load-n40")) as stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    assert text == reply_text(3)


def test_without_settings_the_server_defaults_apply(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(**chat("gpt-4o-mini"))

    assert completion.choices[0].message.content == reply_text(5)  # --tokens 5


def test_a_whole_reply_comes_at_once_with_usage(sdk: openai.OpenAI) -> None:
    completion = sdk.chat.completions.create(**chat("load-n6-gap0"))

    assert completion.choices[0].message.content == reply_text(6)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 6


def test_max_tokens_cuts_the_reply_with_finish_reason_length(sdk: openai.OpenAI) -> None:
    with sdk.chat.completions.create(stream=True, max_tokens=2, **chat("load-n10-gap0")) as stream:
        chunks = list(stream)

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == reply_text(2)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_usage_is_streamed_last_when_asked(sdk: openai.OpenAI) -> None:
    with sdk.chat.completions.create(stream=True, stream_options={"include_usage": True},
                                     **chat("load-n4-gap0")) as stream:
        chunks = list(stream)

    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4


def test_a_stamped_first_token_tells_when_it_was_sent_after_the_time_to_first_token(sdk: openai.OpenAI) -> None:
    asked = time.time()
    with sdk.chat.completions.create(stream=True, **chat("load-ttft150-n3-gap0-stamp")) as stream:
        contents = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]

    sent = stamp_of(contents[0].encode())
    assert sent is not None and contents[0] == f"@{sent:.6f}@ "
    assert sent >= asked + 0.150 - 0.005  # never early (5 ms: the event loop's timer granularity)
    assert contents[1:] == [token_text(1), token_text(2)]


@pytest.mark.parametrize(("body", "why"), [(b"{not json", "invalid request"),
                                           (b'{"model": "m", "tokens": 0}', "tokens"),
                                           (b'{"model": "m", "gap_ms": "soon"}', "numbers"),
                                           (b"[1]", "JSON object")])
def test_bad_requests_get_a_400_in_the_openai_error_shape(server: LoadModelProcess, body: bytes, why: str) -> None:
    response = httpx.post(f"{server.base_url}/chat/completions", content=body)

    assert response.status_code == 400
    assert why in response.json()["error"]["message"]


def test_an_unknown_route_is_a_404(server: LoadModelProcess) -> None:
    response = httpx.post(f"{server.base_url}/embeddings", json={})

    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no route POST /v1/embeddings"


def test_stats_count_the_calls_in_flight_at_once_and_those_abandoned() -> None:
    streams = 2000  # thousands of streams held open by the one server process
    load_model.allow_many_connections()  # this client holds them all too
    with load_model.running() as server:
        asyncio.run(_hold_streams(server, streams))

        stats = server.stats()
        assert stats["calls"] == streams
        assert stats["peakInFlight"] == streams
        assert stats["abandoned"] == streams and stats["completed"] == 0


async def _hold_streams(server: LoadModelProcess, count: int) -> None:
    """`count` streams waiting for a first token an hour away: all in flight together, then all closed."""
    address = urlsplit(server.base_url)
    body = b'{"model": "load-ttft3600000", "stream": true}'
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
               b"content-length: %d\r\n\r\n%s" % (len(body), body))
    connections = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        writer.write(request)
        connections.append((reader, writer))
    for reader, _ in connections:
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 OK")  # headers come at once
    await asyncio.to_thread(wait_until, lambda: server.stats()["inFlight"] == count, 30, f"{count} calls in flight")
    for _, writer in connections:
        writer.close()
    await asyncio.to_thread(wait_until, lambda: server.stats()["inFlight"] == 0, 30, "every call abandoned")


def test_concurrent_sdk_streams_all_complete_and_the_reset_zeroes_the_counts(server: LoadModelProcess) -> None:
    server.reset_stats()

    async def one(client: openai.AsyncOpenAI) -> str:
        stream = await client.chat.completions.create(stream=True, **chat("load-ttft50-n8-gap1"))
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def run_all(count: int) -> list[str]:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="any", max_retries=0) as client:
            return await asyncio.gather(*(one(client) for _ in range(count)))

    texts = asyncio.run(run_all(50))

    assert texts == [reply_text(8)] * 50
    stats = server.stats()
    assert stats["calls"] == stats["completed"] == 50 and stats["inFlight"] == 0
    assert 1 <= stats["peakInFlight"] <= 50 and stats["tokens"] == 50 * 8
    assert server.reset_stats() | {"lagMeanMs": 0, "lagMaxMs": 0} == {
        "calls": 0, "inFlight": 0, "peakInFlight": 0, "completed": 0, "abandoned": 0, "tokens": 0,
        "lagMeanMs": 0, "lagMaxMs": 0}
