"""The guide's WebSocket snippet, unchanged, with the real npm socket.io-client v4, against a real server.

The snippet is read from the guide at test time (never copied into this repository). A small harness
defines what the snippet expects its page to have (`sessionId`, `agentId`, `updateMessageList`) and
points its hard-coded `http://localhost:3000` at the server under test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.support.factories import create_session, history, send_message
from tests.support.node import NODE_DIR, NodeProcess, node_client_package
from tests.support.processes import Stack

REPO_ROOT = Path(__file__).resolve().parents[2]
SNIPPET_START = "import { io } from 'socket.io-client';"
WAIT = 20.0


def guide_snippet() -> str:
    """The guide's WebSocket example: from its import to the end of its `messageBroadcast` handler."""
    # The guide sits in `shared/seeds` beside the repository (or beside the directory holding this checkout).
    for base in REPO_ROOT.parents[:2]:
        for guide in sorted((base / "shared" / "seeds").glob("*.txt")):
            lines = guide.read_text(encoding="utf-8").splitlines()
            if SNIPPET_START not in lines:
                continue
            start = lines.index(SNIPPET_START)
            handler = next(i for i in range(start, len(lines)) if "socket.on('messageBroadcast'" in lines[i])
            end = next(i for i in range(handler, len(lines)) if lines[i].strip() == "});")
            return "\n".join(lines[start:end + 1])
    pytest.skip("the ElizaOS API guide (../shared/seeds/*.txt beside the repository) is not available")


def guide_client(tmp_path: Path, stack: Stack, session: dict[str, str]) -> NodeProcess:
    harness = node_client_package() / "guide-harness"
    snippet = guide_snippet()
    shim = tmp_path / "node_modules" / "socket.io-client"
    shim.mkdir(parents=True)
    (shim / "package.json").write_text('{"name": "socket.io-client", "type": "module", "exports": "./index.mjs"}')
    shutil.copy(harness / "socket.io-client.mjs", shim / "index.mjs")
    script = tmp_path / "guide-websocket.mjs"
    script.write_text("\n".join([(harness / "prelude.mjs").read_text(), snippet,
                                 (harness / "epilogue.mjs").read_text()]))
    env = {**os.environ, "SERVER_URL": stack.base_url, "SESSION_ID": session["sessionId"],
           "AGENT_ID": session["agentId"], "SOCKET_IO_CLIENT_FROM": str(NODE_DIR / "package.json")}
    return NodeProcess(script, env)


def test_guide_snippet_receives_every_stored_message_of_the_session(
        client: httpx.Client, stack: Stack, tmp_path: Path) -> None:
    session = create_session(client)
    sid = session["sessionId"]
    node = guide_client(tmp_path, stack, session)
    try:
        node.wait_for(lambda line: line["kind"] == "joined", WAIT, "room_joined after the snippet's join")

        accepted = send_message(client, sid, "I am worried about my exams", transport="websocket")
        assert accepted.status_code == 202, accepted.text
        reply = node.wait_for(lambda line: line["kind"] == "updateMessageList"
                              and line["payload"]["senderId"] == session["agentId"], WAIT, "the agent's reply")
        blocking = send_message(client, sid, "Thank you")
        assert blocking.status_code == 201, blocking.text
        node.wait_for(lambda line: line["kind"] == "updateMessageList"
                      and line["payload"]["id"] == blocking.json()["id"], WAIT, "the reply to the HTTP send")
    finally:
        stderr = node.stop()

    listed = [line["payload"] for line in node.seen if line["kind"] == "updateMessageList"]
    stored = sorted(history(client, sid)["messages"], key=lambda m: m["seq"])
    assert [m["id"] for m in listed] == [m["id"] for m in stored], stderr
    assert all(m["roomId"] == sid for m in listed)
    assert [m["text"] for m in listed] == [m["content"] for m in stored]
    assert [m["senderId"] for m in listed] == [session["userId"], session["agentId"]] * 2
    assert reply["payload"]["senderName"] == "Eliza" and reply["payload"]["thought"]
    first_reply_chunks = [line["payload"]["chunk"] for line in node.seen
                          if line["kind"] == "chunk" and line["payload"]["messageId"] == reply["payload"]["id"]]
    assert "".join(first_reply_chunks) == reply["payload"]["text"]
