"""`agent-sessions-chat` driven in a pseudo-terminal against a real server."""

from __future__ import annotations

import os
import re
import sys

import httpx
import pexpect
import pytest

from tests.support.factories import SESSIONS
from tests.support.processes import Stack

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True, scope="session")


def spawn_chat(stack: Stack, *args: str) -> pexpect.spawn:
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}
    return pexpect.spawn(sys.executable, ["-m", "agent_sessions_client.chat", "--url", stack.base_url, *args], env=env,
                         encoding="utf-8", timeout=30, dimensions=(40, 200))


def test_chat_sends_shows_state_and_history_and_ends_the_session(stack: Stack) -> None:
    chat = spawn_chat(stack, "--agent", "eliza", "--user", "pty-tester")
    try:
        chat.expect(r"session ([0-9a-f-]{36}) with Eliza")
        session_id = chat.match.group(1)
        chat.expect("you> ")

        chat.sendline("Hello, I feel sad about my job")
        chat.expect(r"Eliza> (.+)\r\n")
        reply = chat.match.group(1).strip()
        chat.expect("you> ")
        chat.sendline("/state")
        chat.expect(r"stage\s+(\w+)")
        chat.expect(r"sentiment\s+(\w+)")
        sentiment = chat.match.group(1)
        chat.expect("you> ")
        chat.sendline("/history")
        chat.expect(r"1 you: Hello, I feel sad about my job")
        chat.expect(r"2 Eliza: (.+)\r\n")
        assert chat.match.group(1).strip() == reply
        chat.expect("you> ")
        chat.sendline("/end")
        chat.expect(f"session {session_id} ended")
        chat.expect(pexpect.EOF)
    finally:
        chat.close(force=True)

    assert chat.exitstatus == 0
    session = httpx.get(f"{stack.base_url}{SESSIONS}/{session_id}").json()
    assert session["status"] == "ended" and session["userId"] == "pty-tester"
    assert session["messageCount"] == 2 and session["metadata"] == {"platform": "terminal"}
    assert sentiment == session["state"]["sentiment"]["label"] == "negative"


def test_chat_with_an_unknown_agent_says_which_exist(stack: Stack) -> None:
    chat = spawn_chat(stack, "--agent", "nobody-by-this-name")
    chat.expect(pexpect.EOF)
    chat.close()

    assert chat.exitstatus == 1
    assert re.search(r"no agent named 'nobody-by-this-name' \(known: .*Eliza", chat.before)
