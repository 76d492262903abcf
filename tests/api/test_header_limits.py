"""Request heads are bounded as they arrive (api/server.py), against a real API process over raw sockets.

Before the limits, one 96 MB `Authorization` header was read whole and held the event loop for seconds, and a
few such headers in parallel grew the process by hundreds of MiB.
"""

from __future__ import annotations

import json
import select
import socket
import threading
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.factories import SESSIONS
from tests.support.processes import Stack
from tests.support.tokens import SERVER

ATTACK_BYTES = 64 * 1024 * 1024  # each attacking header, if the server read it all
CHUNK = b"a" * 65536
ATTACKERS = 4
HEALTH_CHECKS = 5


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


def read_answer(sock: socket.socket) -> Answer:
    """One HTTP/1.1 response (status line, headers, a content-length body) read off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"the server closed the connection without an answer (got {data!r})"
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers.get("content-length", 0)):
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return Answer(int(lines[0].split()[1]), json.loads(body) if body else {})


def send_head(port: int, head: bytes) -> Answer:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head)
        return read_answer(sock)


@dataclass(frozen=True)
class Attack:
    answer: Answer
    sent: int  # header bytes the attacker got to send before the server answered


def attack(port: int) -> Attack:
    """Stream a 64 MB Authorization header, without credentials, until the server answers or closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(b"GET /api/messaging/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ")
        sent = 0
        try:
            while sent < ATTACK_BYTES and not select.select([sock], [], [], 0)[0]:
                sock.sendall(CHUNK)
                sent += len(CHUNK)
            if sent >= ATTACK_BYTES:
                sock.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending: the answer is waiting
        return Attack(read_answer(sock), sent)


def test_huge_headers_are_refused_while_another_client_is_served(secure_stack: Stack) -> None:
    attacks: list[Attack] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def attacker() -> None:
        try:
            while not stop.is_set():
                attacks.append(attack(secure_stack.port))
        except BaseException as error:  # reported by the test below
            failures.append(error)

    threads = [threading.Thread(target=attacker, daemon=True) for _ in range(ATTACKERS)]
    for thread in threads:
        thread.start()
    served_during_attack = 0
    try:
        with httpx.Client(base_url=secure_stack.base_url, timeout=60) as other:
            for _ in range(HEALTH_CHECKS):
                response = other.get(f"{SESSIONS}/health")
                if all(thread.is_alive() for thread in threads):  # answered while every attacker was at it
                    served_during_attack += response.status_code == 200
    finally:
        stop.set()
        for thread in threads:
            thread.join(300)

    assert not failures, failures
    assert served_during_attack == HEALTH_CHECKS
    assert len(attacks) >= ATTACKERS
    for done in attacks:
        assert done.answer.status == 431, done
        assert done.answer.body["error"]["code"] == "HEADERS_TOO_LARGE"
        assert done.sent < ATTACK_BYTES  # refused before the header was read whole


def test_a_request_line_over_the_limit_is_refused_with_414(secure_stack: Stack) -> None:
    answer = send_head(secure_stack.port, b"GET /api/messaging/sessions?userId=" + b"a" * 20_000 +
                       b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

    assert answer.status == 414 and answer.body["error"]["code"] == "URI_TOO_LONG"
    assert answer.body["error"]["details"]["limit"] == 8192


def test_many_small_headers_are_refused_with_431(secure_stack: Stack) -> None:
    headers = b"".join(b"X-Filler-%d: 1\r\n" % n for n in range(500))

    answer = send_head(secure_stack.port, b"GET /api/messaging/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
                       b"\r\n")

    assert answer.status == 431 and answer.body["error"]["code"] == "TOO_MANY_HEADERS"


def test_headers_within_the_limits_are_served_on_a_kept_alive_connection(secure_stack: Stack) -> None:
    large_but_fine = "x" * 16_000  # e.g. a big cookie or identity-provider token
    with httpx.Client(base_url=secure_stack.base_url, headers=SERVER, timeout=30) as client:
        answers = [client.get(SESSIONS, headers={"X-Filler": large_but_fine, "X-Other": "1"}) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200, 200, 200]
