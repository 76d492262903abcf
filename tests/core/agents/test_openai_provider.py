"""The `openai` provider against a local chat-completions server (the OpenAI wire protocol, over real HTTP)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from core.agents import build_agent
from core.agents.base import AgentContext, AgentFailure, AgentReply, HistoryItem
from core.agents.openai_provider import close_sessions, session_for
from tests.support.asyncio_bridge import outputs_of
from tests.support.openai_server import GOOD_KEY, Delay, Drop, Fail, FakeOpenAI, Reply


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_KEY_TEST_LLM", GOOD_KEY)
    monkeypatch.setenv("MODEL_KEY_TEST_LLM_WRONG", "sk-wrong")


def settings_for(fake: FakeOpenAI, model: str, **model_settings: Any) -> dict[str, Any]:
    return {"system": "You are terse.", "model": {"name": model, "baseUrl": fake.base_url,
                                                  "apiKeyEnv": "MODEL_KEY_TEST_LLM", "requestTimeoutSeconds": 2,
                                                  **model_settings}}


def new_model(fake: FakeOpenAI, *steps: Any) -> str:
    return fake.add_model(f"model-{uuid.uuid4().hex[:8]}", *steps)


def run(settings: dict[str, Any], message: str = "Hello there", **context: Any) -> tuple[list[str], AgentReply]:
    outputs = outputs_of(build_agent("openai", settings).run(
        AgentContext(session_id="s", user_id="u", message=message, settings=settings, agent_name="Ada", **context)))
    chunks, final = outputs[:-1], outputs[-1]
    assert all(isinstance(chunk, str) for chunk in chunks) and isinstance(final, AgentReply)
    return chunks, final


def failure_of(settings: dict[str, Any]) -> AgentFailure:
    with pytest.raises(AgentFailure) as caught:
        run(settings)
    return caught.value


def test_streams_tokens_as_chunks_and_sends_the_character(fake_openai: FakeOpenAI) -> None:
    model = new_model(fake_openai, Reply("I can help with that today."))

    chunks, reply = run(settings_for(fake_openai, model, temperature=0.2, maxTokens=64),
                        history=(HistoryItem("user", "earlier question"), HistoryItem("agent", "earlier answer")))

    assert len(chunks) > 1 and "".join(chunks) == reply.text == "I can help with that today."
    assert reply.confidence == 0.7 and reply.actions == ("REPLY",)
    [request] = fake_openai.requests_for(model)
    assert request.headers["authorization"] == f"Bearer {GOOD_KEY}"
    assert request.body["stream"] is True and request.body["temperature"] == 0.2 and request.body["max_tokens"] == 64
    assert [m["role"] for m in request.messages] == ["system", "user", "assistant", "user"]
    assert "You are Ada." in request.messages[0]["content"] and "You are terse." in request.messages[0]["content"]
    assert request.messages[-1]["content"] == "Hello there"


def test_non_streaming_mode_returns_the_whole_reply_as_one_chunk(fake_openai: FakeOpenAI) -> None:
    model = new_model(fake_openai, Reply("All at once.", reasoning="the user wants it whole"))

    chunks, reply = run(settings_for(fake_openai, model, stream=False))

    assert chunks == ["All at once."] and reply.thought == "the user wants it whole"
    assert fake_openai.requests_for(model)[0].body.get("stream") in (None, False)


def test_structured_reply_gives_text_thought_actions_and_confidence(fake_openai: FakeOpenAI) -> None:
    structured = ('{"text": "Your order ships tomorrow.", "thought": "order status question", '
                  '"actions": ["REPLY", "LOOKUP_ORDER"], "confidence": 0.92}')
    model = new_model(fake_openai, Reply(structured))

    chunks, reply = run(settings_for(fake_openai, model, structuredReplies=True))

    assert chunks == ["Your order ships tomorrow."]  # the JSON is held back, only the text is streamed
    assert (reply.text, reply.thought, reply.actions, reply.confidence) == (
        "Your order ships tomorrow.", "order status question", ("REPLY", "LOOKUP_ORDER"), 0.92)
    assert "single JSON object" in fake_openai.requests_for(model)[0].messages[0]["content"]


def test_a_reply_cut_at_max_tokens_reports_lower_confidence(fake_openai: FakeOpenAI) -> None:
    model = new_model(fake_openai, Reply("This answer was cut", finish_reason="length"))

    _, reply = run(settings_for(fake_openai, model))

    assert reply.confidence == 0.4 and "length" in reply.thought


@pytest.mark.parametrize(("step", "code", "expected"), [
    (Fail(503, "upstream overloaded"), "MODEL_SERVER_ERROR", "the model server answered 503 (server error)"),
    (Fail(429, "Rate limit reached"), "MODEL_RATE_LIMITED", "429 (rate limited or out of quota)"),
    (Delay(1.5), "MODEL_TIMEOUT", "did not answer within 0.5 s"),
    (Drop(), "MODEL_UNREACHABLE", "could not reach the model server"),
    (Drop(after_chunks=2), "MODEL_STREAM_ERROR", "broke off before its end"),
])
def test_transient_failures_are_marked_for_retry(fake_openai: FakeOpenAI, step: Any, code: str, expected: str) -> None:
    failure = failure_of(settings_for(fake_openai, new_model(fake_openai, step), requestTimeoutSeconds=0.5))

    assert failure.transient is True and failure.code == code and expected in failure.reason


def test_bad_key_fails_for_good_with_a_stable_code(fake_openai: FakeOpenAI) -> None:
    settings = settings_for(fake_openai, new_model(fake_openai), apiKeyEnv="MODEL_KEY_TEST_LLM_WRONG")

    failure = failure_of(settings)

    assert failure.transient is False and failure.code == "MODEL_AUTH_FAILED"
    assert failure.reason == "the model server answered 401 (the API key was refused)"
    assert "sk-wrong" not in failure.reason


@pytest.mark.parametrize(("step", "expected"), [
    (Fail(400, "This model's maximum context length is 8192 tokens", "context_length_exceeded"),
     "400 (bad request (for example a context too long for the model))"),
    (Fail(422, "messages: field required"), "422 (request not understood)"),
])
def test_request_errors_are_not_retried(fake_openai: FakeOpenAI, step: Any, expected: str) -> None:
    failure = failure_of(settings_for(fake_openai, new_model(fake_openai, step)))

    assert failure.transient is False and failure.code == "MODEL_REQUEST_REJECTED" and expected in failure.reason


def test_unknown_model_is_not_retried(fake_openai: FakeOpenAI) -> None:
    failure = failure_of(settings_for(fake_openai, "no-such-model"))

    assert failure.transient is False and failure.reason == "the model server answered 404 (unknown model or endpoint)"


@pytest.mark.parametrize("step", [Fail(500, "db at postgres://10.0.0.5:5432 is down"), Drop(), Delay(1.5),
                                  Fail(400, "prompt was: <the user's secret text>")])
def test_users_see_neither_the_model_servers_address_nor_its_words_but_the_log_does(
        fake_openai: FakeOpenAI, step: Any, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(fake_openai, new_model(fake_openai, step), requestTimeoutSeconds=0.5)

    with caplog.at_level("WARNING", logger="core.agents.openai_provider"):
        failure = failure_of(settings)

    assert failure.code.startswith("MODEL_")
    for internal in (fake_openai.base_url, "127.0.0.1", "10.0.0.5", "secret text"):
        assert internal not in failure.reason
    assert fake_openai.base_url in caplog.text  # the operator's detail
    if isinstance(step, Fail):
        assert step.message in caplog.text


def test_missing_key_variable_fails_before_any_request(fake_openai: FakeOpenAI) -> None:
    model = new_model(fake_openai)

    failure = failure_of(settings_for(fake_openai, model, apiKeyEnv="MODEL_KEY_TEST_LLM_NOT_SET"))

    assert failure.code == "AGENT_MISCONFIGURED" and "MODEL_KEY_TEST_LLM_NOT_SET" in failure.reason
    assert fake_openai.requests_for(model) == []


def test_one_connection_pool_per_endpoint() -> None:
    async def scenario() -> None:
        first = session_for("http://127.0.0.1:9/v1/chat/completions")

        assert session_for("http://127.0.0.1:9/v1/chat/completions") is first
        assert session_for("http://127.0.0.1:10/v1/chat/completions") is not first
        await close_sessions()

    asyncio.run(scenario())
