"""Building the prompt: the character, what was learned, and as much whole recent history as fits."""

from __future__ import annotations

import pytest

from core.agents.base import AgentContext, AgentFailure, HistoryItem
from core.agents.character import AgentSettings
from core.agents.prompt import build_prompt, estimate_tokens, message_tokens


def character(**model: object) -> AgentSettings:
    return AgentSettings.model_validate({
        "system": "You help customers of Acme Bank.",
        "bio": ["Ten years in retail banking."],
        "style": ["Short sentences."],
        "examples": [[{"role": "user", "content": "Hi"}, {"role": "agent", "content": "Hello! How can I help?"}]],
        "model": {"name": "m", "contextTokens": 1000, "maxTokens": 200, **model},
    })


def context(history: tuple[HistoryItem, ...] = (), **extra: object) -> AgentContext:
    return AgentContext(session_id="s", user_id="u", message="What is my balance?", history=history,
                        agent_name="Penny", **extra)  # type: ignore[arg-type]


def test_estimate_is_four_utf8_bytes_per_token() -> None:
    assert estimate_tokens("abcdefgh") == 2
    assert estimate_tokens("é") == 1 and estimate_tokens("日本語") == 3  # 9 bytes


def test_system_message_holds_character_preferences_and_state() -> None:
    prompt = build_prompt(context(preferences={"name": "Alice", "likes": ["jazz", "tea"]},
                                  conversation={"stage": "engaged", "intent": "question",
                                                "topics": [{"topic": "balance", "count": 2}],
                                                "sentiment": {"label": "negative", "score": -0.4}}), character())

    system = prompt.messages[0]
    assert system["role"] == "system"
    for expected in ("You are Penny.", "You help customers of Acme Bank.", "- Ten years in retail banking.",
                     "- Short sentences.", "User: Hi\nPenny: Hello! How can I help?", "name: Alice; likes: jazz, tea",
                     "stage: engaged", "the user's intent: question", "topics: balance", "the user's mood: negative"):
        assert expected in system["content"]
    assert prompt.messages[-1] == {"role": "user", "content": "What is my balance?"}


def test_all_history_is_sent_when_it_fits() -> None:
    history = (HistoryItem("user", "hello"), HistoryItem("agent", "hi, how can I help?"))

    prompt = build_prompt(context(history), character())

    assert prompt.messages[1:-1] == [{"role": "user", "content": "hello"},
                                     {"role": "assistant", "content": "hi, how can I help?"}]
    assert prompt.history_dropped == 0 and "not shown" not in prompt.messages[0]["content"]


def test_oldest_messages_are_dropped_whole_to_fit_the_budget() -> None:
    history = tuple(HistoryItem("user" if n % 2 == 0 else "agent", f"message {n}: " + "x" * 400) for n in range(10))

    prompt = build_prompt(context(history), character())

    kept = prompt.messages[1:-1]
    assert 0 < len(kept) < 10 and prompt.history_dropped == 10 - len(kept)
    assert [m["content"] for m in kept] == [item.content for item in history[-len(kept):]]  # newest, uncut
    assert f"({prompt.history_dropped} earlier messages of this conversation are not shown here.)" \
        in prompt.messages[0]["content"]
    assert sum(message_tokens(m["content"]) for m in prompt.messages) <= 1000 - 200


def test_a_prompt_over_budget_without_history_fails_without_retry() -> None:
    with pytest.raises(AgentFailure) as caught:
        build_prompt(context(), character(contextTokens=256, maxTokens=200))

    assert caught.value.transient is False and caught.value.code == "AGENT_CONTEXT_TOO_LONG"
    assert "context is too long" in caught.value.reason
