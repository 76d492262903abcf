"""Clients that hold resources without using them: sockets that never send a request, and event-stream
readers that stop reading. A real API process (uvicorn as `agent-sessions api` runs it) with short limits."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from core.bus import Event, EventPublisher, Keys
from tests.support.databases import REDIS_URL
from tests.support.factories import SESSIONS, create_session, send_message
from tests.support.processes import Stack, stack_env, wait_until

HEADER_TIMEOUT_SECONDS = 1.0
IDLE_SOCKETS = 300
CHUNK_BYTES = 256 * 1024
CHUNKS = 64  # 16 MiB of events: more than the socket buffers between the API and a reader that stopped


@pytest.fixture(scope="module")
def api(postgres_url: str, redis_prefix: str, run_id: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = stack_env(postgres_url, f"{redis_prefix}slow-clients:", f"q-{run_id}-slow-clients",
                    REQUEST_HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT_SECONDS), SSE_SEND_TIMEOUT_SECONDS="1",
                    REPLY_WAIT_SECONDS="2")
    with Stack(env=env, log_dir=Path(tmp_path_factory.mktemp("slow-clients"))).running() as stack:
        yield stack


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False  # open, nothing to read
    except ConnectionResetError:
        return True


def test_connections_that_never_send_a_request_are_closed(api: Stack) -> None:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.create_connection(("127.0.0.1", api.port), timeout=5))
                   for _ in range(IDLE_SOCKETS)]
        for sock in sockets:
            sock.setblocking(False)  # peeking must not wait

        wait_until(lambda: all(closed_by_server(sock) for sock in sockets), 30,
                   f"the API to close {IDLE_SOCKETS} idle connections", interval=0.2)

        assert httpx.get(f"{api.base_url}{SESSIONS}/health", timeout=10).status_code == 200


def test_the_header_deadline_does_not_cut_a_reply_that_takes_longer(api: Stack) -> None:
    with httpx.Client(base_url=api.base_url, timeout=30) as client:
        session_id = create_session(client)["sessionId"]
        # No worker: the send waits its whole REPLY_WAIT_SECONDS (2 s), twice the header deadline.
        response = send_message(client, session_id, "Hello?")

    assert response.status_code == 202, response.text


def test_a_dropped_slow_event_stream_reader_is_one_log_line(api: Stack, redis_prefix: str) -> None:
    with httpx.Client(base_url=api.base_url, timeout=30) as client:
        session_id = create_session(client)["sessionId"]
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that takes data slowly, then not at all
    reader.connect(("127.0.0.1", api.port))
    reader.sendall(f"GET {SESSIONS}/{session_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    wait_until(lambda: reader.recv(1, socket.MSG_PEEK) != b"", 10, "the stream to start")
    publisher = EventPublisher(redis.Redis.from_url(REDIS_URL), Keys(f"{redis_prefix}slow-clients:"), 1000, 60)
    publisher.publish(Event(session_id=uuid.UUID(session_id), seq=0, chunk=index + 1, type="message.chunk",
                            data={"delta": "x" * CHUNK_BYTES}) for index in range(CHUNKS))

    def dropped_lines() -> list[str]:
        return [line for line in api.services[0].log_path.read_text(errors="replace").splitlines()
                if "SendTimeoutError" in line or "dropped an event-stream client" in line]

    wait_until(lambda: bool(dropped_lines()), 60, "the API to drop the reader", interval=0.2)
    log = api.services[0].log_path.read_text(errors="replace")
    reader.close()

    assert len(dropped_lines()) == 1, dropped_lines()
    assert "dropped an event-stream client" in dropped_lines()[0]
    assert "Traceback" not in log and "Exception in ASGI application" not in log
