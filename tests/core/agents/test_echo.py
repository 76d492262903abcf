import pytest

from core.agents.base import AgentContext, AgentReply
from core.agents.echo import EchoAgent
from tests.support.asyncio_bridge import outputs_of, record_sleeps


def run_echo(message: str) -> tuple[list[str], AgentReply]:
    *chunks, reply = outputs_of(EchoAgent().run(AgentContext(session_id="s1", user_id="u1", message=message)))
    return chunks, reply


def test_reply_repeats_the_message():
    _, reply = run_echo("hello there")
    assert reply.text == "echo: hello there"


def test_chunks_join_to_the_reply_text():
    chunks, reply = run_echo("hello there")
    assert 1 <= len(chunks) <= 2
    assert "".join(chunks) == reply.text


def test_reply_is_fully_confident_and_explains_itself():
    _, reply = run_echo("hi")
    assert reply.confidence == 1.0
    assert reply.thought == "echo agent repeats the message"
    assert reply.actions == ("REPLY",)


def test_empty_message_still_replies():
    chunks, reply = run_echo("")
    assert reply.text == "echo: "
    assert "".join(chunks) == reply.text


def test_from_settings_builds_an_agent():
    assert isinstance(EchoAgent.from_settings({}), EchoAgent)


def test_chunk_delay_pauses_before_each_chunk(monkeypatch: pytest.MonkeyPatch):
    sleeps = record_sleeps(monkeypatch)
    chunks = outputs_of(EchoAgent.from_settings({"chunkDelayMs": 25}).run(
        AgentContext(session_id="s1", user_id="u1", message="hi")))[:-1]
    assert sleeps == [0.025] * (len(chunks) - 1) and len(chunks) == 2  # a pause between chunks


def test_chunk_delay_is_capped(monkeypatch: pytest.MonkeyPatch):
    assert EchoAgent.from_settings({"chunkDelayMs": 10**9}).delay_seconds == 1.0
