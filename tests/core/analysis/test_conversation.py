"""Scripted conversations through `analyze_exchange`, checking the state after every turn."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.analysis import analyze_exchange, initial_state, public_state

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
SOLUTION = "Here is what you can try: open Settings and restart the app."
CLARIFYING = "Which version of the app are you using?"


@dataclass(frozen=True)
class Turn:
    user: str
    expect: dict[str, Any] = field(default_factory=dict)  # path -> value, or predicate on the value
    after_seconds: float = 20.0  # since the previous user message
    confidence: float = 0.8
    agent: str = SOLUTION
    metadata: dict | None = None


def below(limit: float) -> Callable[[Any], bool]:
    return lambda value: value < limit


def above(limit: float) -> Callable[[Any], bool]:
    return lambda value: value > limit


def lookup(state: dict, message: dict, path: str) -> Any:
    """"msg.x.y" reads the message analysis, "topic:word" a topic's count, anything else the state."""
    if path.startswith("topic:"):
        return next((t["count"] for t in state["topics"] if t["topic"] == path.removeprefix("topic:")), None)
    value: Any = message if path.startswith("msg.") else state
    for key in path.removeprefix("msg.").split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


LONG_QUESTIONS = (
    "I've been setting up the reporting dashboard for my team and I have a few questions about how the "
    "scheduled exports work. Do the exports run in the timezone of the account or of each user, and can I "
    "choose which columns end up in the CSV? Also, is there a limit on how many reports one schedule can hold?"
)
LONG_FOLLOW_UP = (
    "That makes sense, thank you. Following on from that, when a scheduled export fails, does the system retry "
    "automatically or do I need to trigger it again by hand? And would the people on the distribution list get "
    "an email telling them the report is late, or do they just receive nothing at all that morning?"
)

CONVERSATIONS: dict[str, list[Turn]] = {
    "greeting_only": [
        Turn("Hello!", {"stage": "greeting", "intent": "greeting", "turns": 1, "topics": []}),
        Turn("Hi there, how are you?", {"stage": "greeting", "msg.intent": "greeting", "sentiment.label": "neutral"}),
    ],
    "problem_solution_thanks_bye": [
        Turn("Hello!", {"stage": "greeting", "intent": "greeting"}),
        Turn("My app keeps crashing when I upload photos", {"stage": "discovery", "intent": "statement"}),
        Turn("Version 3.2 on Android. Is there a fix?", {"stage": "engaged", "intent": "question"}),
        Turn("Thanks, that fixed it!", {"stage": "resolution", "intent": "gratitude", "msg.sentiment.label": "positive"}),
        Turn("Bye!", {"stage": "closing", "intent": "farewell"}),
    ],
    "clarifying_agent_keeps_discovery_for_a_while": [
        Turn("My invoice shows the wrong amount", {"stage": "discovery"}, agent="Which invoice number is it?"),
        Turn("Invoice 1234 from March", {"stage": "discovery"}, agent="Which plan are you on?"),
        Turn("The pro plan", {"stage": "engaged"}, agent="And which card did you pay with?"),
    ],
    "angry_complaint": [
        Turn(
            "This is ridiculous! I've been waiting two weeks for my refund and nobody answers. Worst service ever.",
            {
                "intent": "complaint",
                "msg.sentiment.label": "negative",
                "msg.sentiment.score": below(-0.3),
                "sentiment.label": "negative",
                "stage": "discovery",
            },
        ),
        Turn("This is the worst app ever, it crashes all the time", {"intent": "complaint", "sentiment.score": below(-0.3)}),
    ],
    "mixed_feelings": [
        Turn(
            "I love the new design but the app keeps crashing and I hate that",
            {"msg.sentiment.label": "mixed", "sentiment.label": "mixed", "intent": "feedback"},
        ),
        Turn("Great design, terrible performance", {"msg.sentiment.label": "mixed"}),
    ],
    "one_word_disengaged_replies": [
        Turn("Hi, I need help with my order please", {"engagement.level": "medium"}),
        Turn("ok", after_seconds=60),
        Turn("yes", after_seconds=90),
        Turn("no", after_seconds=120, expect={"engagement.level": "low"}),
        Turn("ok", after_seconds=150, expect={"engagement.level": "low", "engagement.score": below(0.35)}),
    ],
    "long_detailed_questions_engaged": [
        Turn(LONG_QUESTIONS, {"engagement.level": "high", "intent": "question"}),
        Turn(LONG_FOLLOW_UP, {"engagement.level": "high", "engagement.score": above(0.7)}, after_seconds=15),
    ],
    "name_then_call_me": [
        Turn("Hi, my name is Alice", {"preferences.name": "Alice", "intent": "greeting", "stage": "greeting"}),
        Turn("Please call me Al", {"preferences.name": "Alice", "preferences.addressAs": "Al"}),
        Turn("Actually my name is Alicia", {"preferences.name": "Alicia", "preferences.addressAs": "Al"}),
    ],
    "im_fine_is_not_a_name": [
        Turn("Hi! How are you?", {"preferences": {}}),
        Turn("I'm fine, thanks", {"preferences.name": None, "intent": "smalltalk"}),
        Turn("I'm tired of this bug", {"preferences.name": None}),
        Turn("Hey, I'm Bob.", {"preferences.name": "Bob"}),
        Turn("I'm Happy with the fix", {"preferences.name": "Bob"}),
    ],
    "likes_and_dislikes": [
        Turn("I love hiking and jazz", {"preferences.likes": ["hiking", "jazz"]}),
        Turn("I don't like early meetings", {"preferences.dislikes": ["early meetings"]}),
        Turn(
            "Actually I hate jazz. I like it when you answer quickly",
            {"preferences.likes": ["hiking"], "preferences.dislikes": ["early meetings", "jazz"]},
        ),
    ],
    "timezone_and_language_from_metadata": [
        Turn(
            "Hello",
            {"preferences.timezone": "Europe/Paris", "preferences.language": "fr-FR"},
            metadata={"userTimezone": "Europe/Paris", "locale": "fr-FR"},
        ),
        Turn(
            "What time is the webinar?",
            {"preferences.timezone": "America/New_York", "preferences.language": "fr-FR"},
            metadata={"timezone": "America/New_York"},
        ),
        Turn("ok", {"preferences.timezone": "America/New_York"}),
    ],
    "new_problem_after_resolution_reopens_discovery": [
        Turn("Hi", {"stage": "greeting"}),
        Turn("I can't export my report to PDF", {"stage": "discovery"}),
        Turn("I'm on the free plan, does that matter?", {"stage": "engaged"}),
        Turn("That worked, thank you!", {"stage": "resolution"}),
        Turn("Another issue: the mobile app won't load my projects", {"stage": "discovery"}),
        Turn("It's an iPhone 12", {"stage": "engaged"}),
        Turn("Perfect, thanks a lot", {"stage": "resolution"}),
        Turn("Goodbye", {"stage": "closing"}),
        Turn("Wait, one more problem: my password reset email never arrived", {"stage": "discovery"}),
    ],
    "stage_never_goes_backwards": [
        Turn("Hello", {"stage": "greeting"}),
        Turn("How do I add a teammate to my workspace?", {"stage": "discovery"}),
        Turn("Where is the members page?", {"stage": "engaged"}),
        Turn("Hi again!", {"stage": "engaged", "intent": "greeting"}),
        Turn("Thanks, I found it", {"stage": "resolution"}),
        Turn("Is it free?", {"stage": "resolution"}),
        Turn("Hello?", {"stage": "resolution"}),
        Turn("Have a nice day", {"stage": "closing"}),
        Turn("ok thanks", {"stage": "closing"}),
        Turn("Hi", {"stage": "closing"}),
    ],
    "smalltalk_moves_on_after_a_while": [
        Turn("Hey", {"stage": "greeting"}),
        Turn("How's it going?", {"stage": "greeting", "intent": "smalltalk"}),
        Turn("Haha nice weather today", {"stage": "discovery"}),
    ],
    "topics_accumulate_with_counts": [
        Turn("My password reset email never arrives", {"topic:password": 1, "msg.topics": lambda t: "password" in t}),
        Turn("I requested the password reset twice", {"topic:password": 2, "topic:reset": 2}),
        Turn(
            "Still no password emails in my inbox",
            {"topic:password": 3, "topic:email": 2, "topic:inbox": 1, "topics": lambda t: t[0]["topic"] == "password"},
        ),
    ],
    "running_sentiment_decays": [
        Turn("This is awful and I am very angry", {"msg.sentiment.label": "negative", "sentiment.score": below(-0.5)}),
        Turn("The parcel was sent on Monday", {"msg.sentiment.label": "neutral", "sentiment.score": below(-0.3)}),
        Turn("It was placed on Monday", {"sentiment.label": "negative", "sentiment.score": above(-0.3)}),
        Turn("Great, the support is wonderful and very helpful!", {"sentiment.label": "positive"}),
    ],
    "agent_confidence_is_carried": [
        Turn("Hello", {"agentConfidence": 0.73, "msg.agentConfidence": 0.73}, confidence=0.7349),
        Turn("Can you check my order?", {"agentConfidence": 1.0}, confidence=1.7),
        Turn("And the delivery date?", {"agentConfidence": 0.0}, confidence=-0.2),
    ],
    "gratitude_feedback_request_question_intents": [
        Turn("Thank you so much, that was really helpful", {"intent": "gratitude"}),
        Turn("It would be nice if the app had a dark mode", {"intent": "feedback"}),
        Turn("Your support team is amazing, great job!", {"intent": "feedback", "msg.sentiment.label": "positive"}),
        Turn("Can you help me reset my password?", {"intent": "request"}),
        Turn("What does error 42 mean?", {"intent": "question"}),
        Turn("The invoice was sent to my old address", {"intent": "statement"}),
    ],
}


def run(turns: list[Turn]) -> list[tuple[dict, dict]]:
    state, sent_at, results = None, START, []
    for turn in turns:
        sent_at += timedelta(seconds=turn.after_seconds)
        state, message = analyze_exchange(state, turn.user, turn.agent, turn.confidence, sent_at, turn.metadata)
        results.append((state, message))
    return results


@pytest.mark.parametrize("turns", CONVERSATIONS.values(), ids=CONVERSATIONS.keys())
def test_scripted_conversation(turns: list[Turn]) -> None:
    for number, (turn, (state, message)) in enumerate(zip(turns, run(turns), strict=True), start=1):
        for path, expected in turn.expect.items():
            actual = lookup(state, message, path)
            ok = expected(actual) if callable(expected) else actual == expected
            assert ok, f"turn {number} {turn.user!r}: {path} = {actual!r}, expected {expected!r}"


def test_running_sentiment_is_an_exponential_decay() -> None:
    (first, first_message), (second, second_message) = run([Turn("I hate this, it's awful"), Turn("I love it!")])
    assert first["sentiment"]["score"] == first_message["sentiment"]["score"]  # nothing to decay from yet
    expected = 0.6 * first["sentiment"]["score"] + 0.4 * second_message["sentiment"]["score"]
    assert second["sentiment"]["score"] == pytest.approx(expected, abs=1e-3)


def made_up_word(number: int) -> str:
    letters = "".join("bcdfghjklmnpqrstvwxz"[int(digit)] for digit in f"{number:04d}")
    return f"zo{letters}"


def test_state_stays_bounded_over_500_turns() -> None:
    turns = [
        Turn(
            f"Why does the {made_up_word(i)} {made_up_word(i + 1000)} fail? I like {made_up_word(i + 2000)}. "
            + ("ok " * (i % 7)),
            metadata={"timezone": f"Zone/{made_up_word(i)}"},
        )
        for i in range(500)
    ]
    states = [state for state, _ in run(turns)]
    sizes = [len(json.dumps(state)) for state in states]
    assert max(sizes[100:]) < 1.2 * sizes[100]
    assert len(states[-1]["topics"]) == 20
    assert len(states[-1]["preferences"]["likes"]) == 10
    assert states[-1]["topics"][0] == {"topic": "fail", "count": 500}


def test_everything_returned_is_json_serialisable() -> None:
    for turns in CONVERSATIONS.values():
        for state, message in run(turns):
            assert json.loads(json.dumps(state)) == state
            assert json.loads(json.dumps(message)) == message


def test_message_analysis_shape() -> None:
    [(state, message)] = run([Turn("My export button fails every time", confidence=0.42)])
    assert set(message) == {"stage", "intent", "topics", "sentiment", "engagement", "agentConfidence"}
    assert {"export", "button", "export button fail"} <= set(message["topics"])
    assert message["engagement"] == state["engagement"]
    assert set(state) == {*public_state(None), "_internal"}


def test_previous_state_is_not_modified() -> None:
    [(state, _)] = run([Turn("I love jazz. My password reset fails", metadata={"timezone": "UTC"})])
    snapshot = copy.deepcopy(state)
    analyze_exchange(state, "I hate jazz and my invoice is wrong", SOLUTION, 0.5, START + timedelta(hours=1))
    assert state == snapshot


def test_public_and_initial_state() -> None:
    empty = public_state(None)
    assert "_internal" not in empty and "_internal" in initial_state()
    assert empty["stage"] == "greeting" and empty["turns"] == 0 and empty["topics"] == []
    assert empty["sentiment"] == {"label": "neutral", "score": 0.0}
    assert empty["engagement"]["level"] == "medium"
    [(state, _)] = run([Turn("Hello")])
    assert public_state(state) == {key: value for key, value in state.items() if key != "_internal"}
    assert analyze_exchange(initial_state(), "Hello", SOLUTION, 0.8, START)[0]["turns"] == 1


def test_updated_at_and_cadence_use_the_given_timestamps() -> None:
    (_, _), (state, _) = run([Turn("Hello"), Turn("I have a question about billing", after_seconds=3600)])
    assert state["updatedAt"] == (START + timedelta(seconds=3620)).isoformat()
    quick = run([Turn("Hello"), Turn("I have a question about billing", after_seconds=5)])[-1][0]
    assert quick["engagement"]["score"] > state["engagement"]["score"]
