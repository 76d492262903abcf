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
    """One user message and what the state must be after it.

    In the scripted tables every turn states the stage, the running sentiment label and the engagement
    level, and `learned` is compared with the whole preferences dict (so nothing is learned by mistake)."""

    user: str
    stage: str = ""
    sentiment: str = ""  # the conversation's running label, not the message's (that is "msg.sentiment.label")
    engagement: str = ""
    expect: dict[str, Any] = field(default_factory=dict)  # further checks: path -> value, or predicate on it
    learned: dict[str, Any] = field(default_factory=dict)
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

# Turn(user message, stage, running sentiment, engagement, {further checks}, learned={preferences}, ...)
CONVERSATIONS: dict[str, list[Turn]] = {
    "greeting_only": [
        Turn("Hello!", "greeting", "neutral", "medium", {"intent": "greeting", "turns": 1, "topics": []}),
        Turn("Hi there, how are you?", "greeting", "neutral", "medium", {"msg.intent": "greeting", "turns": 2}),
    ],
    "problem_solution_thanks_bye": [
        Turn("Hello!", "greeting", "neutral", "medium", {"intent": "greeting"}),
        Turn("My app keeps crashing when I upload photos", "discovery", "neutral", "medium", {"intent": "statement"}),
        Turn("Version 3.2 on Android. Is there a fix?", "engaged", "neutral", "medium", {"intent": "question"}),
        Turn("Thanks, that fixed it!", "resolution", "positive", "medium",
             {"intent": "gratitude", "msg.sentiment.label": "positive"}),
        Turn("Bye!", "closing", "positive", "medium", {"intent": "farewell", "msg.sentiment.label": "neutral"}),
    ],
    "clarifying_agent_keeps_discovery_for_a_while": [
        Turn("My invoice shows the wrong amount", "discovery", "negative", "medium",
             agent="Which invoice number is it?"),
        Turn("Invoice 1234 from March", "discovery", "negative", "medium", {"msg.sentiment.label": "neutral"},
             agent="Which plan are you on?"),
        Turn("The pro plan", "engaged", "negative", "medium", agent="And which card did you pay with?"),
    ],
    "angry_complaint": [
        Turn("This is ridiculous! I've been waiting two weeks for my refund and nobody answers. Worst service ever.",
             "discovery", "negative", "medium",
             {"intent": "complaint", "msg.sentiment.label": "negative", "msg.sentiment.score": below(-0.3)}),
        Turn("This is the worst app ever, it crashes all the time", "engaged", "negative", "medium",
             {"intent": "complaint", "sentiment.score": below(-0.3)}),
    ],
    "angry_complaint_calms_down_to_closing": [
        Turn("This is unacceptable, my order arrived broken and nobody answers my emails!",
             "discovery", "negative", "medium", {"intent": "complaint", "sentiment.score": below(-0.6)}),
        Turn("I already sent photos of the damage twice", "engaged", "negative", "medium", {"intent": "statement"}),
        # thanks are positive, but one polite message does not erase the anger: the running value recovers slowly
        Turn("Ok, the replacement is on its way, thank you", "resolution", "negative", "medium",
             {"intent": "gratitude", "msg.sentiment.label": "positive", "sentiment.score": above(-0.3)}),
        Turn("Bye", "closing", "negative", "medium", {"intent": "farewell", "sentiment.score": above(-0.2)}),
    ],
    "mixed_feelings": [
        Turn("I love the new design but the app keeps crashing and I hate that", "discovery", "mixed", "medium",
             {"msg.sentiment.label": "mixed", "intent": "feedback"}, learned={"likes": ["new design"]}),
        Turn("Great design, terrible performance", "engaged", "mixed", "medium", {"msg.sentiment.label": "mixed"},
             learned={"likes": ["new design"]}),
        # once only good news follows, the strong negative part decays and the conversation is no longer mixed
        Turn("The crash is fixed now and everything is fast, great work", "engaged", "positive", "medium",
             {"msg.sentiment.label": "positive"}, learned={"likes": ["new design"]}),
    ],
    "one_word_disengaged_replies": [
        Turn("Hi, I need help with my order please", "discovery", "positive", "medium", {"intent": "request"}),
        Turn("ok", "engaged", "positive", "low", after_seconds=60),
        Turn("yes", "engaged", "positive", "low", {"engagement.score": below(0.3)}, after_seconds=90),
        Turn("no", "engaged", "positive", "low", {"msg.sentiment.label": "negative"}, after_seconds=120),
        Turn("ok", "engaged", "positive", "low", {"engagement.score": below(0.1)}, after_seconds=150),
    ],
    "long_detailed_questions_engaged": [
        Turn(LONG_QUESTIONS, "discovery", "neutral", "high", {"intent": "question"}),
        # thanks followed by more questions is not a resolution: the user is still asking
        Turn(LONG_FOLLOW_UP, "engaged", "positive", "high", {"intent": "question", "engagement.score": above(0.7)},
             after_seconds=15),
    ],
    "name_introduction": [
        Turn("Hi, my name is Alice", "greeting", "neutral", "medium", {"intent": "greeting", "msg.topics": []},
             learned={"name": "Alice"}),
        Turn("My printer shows a paper jam error", "discovery", "negative", "medium",
             {"msg.topics": lambda topics: "printer" in topics}, learned={"name": "Alice"}),
        # the user's own name is personal, never a topic, however often it comes up
        Turn("Alice here again, the printer still jams", "engaged", "negative", "medium",
             {"msg.topics": ["printer", "jam"], "topic:alice": None, "topic:printer": 2}, learned={"name": "Alice"}),
        Turn("It works now, thanks!", "resolution", "positive", "medium", learned={"name": "Alice"}),
    ],
    "two_word_names_and_the_word_after_a_name": [
        Turn("Hello, my name is Mary Jane", "greeting", "neutral", "medium", {"msg.topics": []},
             learned={"name": "Mary Jane"}),
        Turn("Actually my name is Alice Please fix my login", "discovery", "positive", "medium",
             {"intent": "request", "msg.topics": ["fix", "login"]}, learned={"name": "Alice"}),
        Turn("I'm Bob and I moved teams", "engaged", "positive", "medium", {"topic:bob": None},
             learned={"name": "Bob"}),
    ],
    "name_then_call_me": [
        Turn("Hi, my name is Alice", "greeting", "neutral", "medium", {"intent": "greeting"},
             learned={"name": "Alice"}),
        Turn("Please call me Al", "greeting", "positive", "medium", learned={"name": "Alice", "addressAs": "Al"}),
        Turn("Actually my name is Alicia", "discovery", "positive", "medium",
             learned={"name": "Alicia", "addressAs": "Al"}),
    ],
    "im_fine_is_not_a_name": [
        Turn("Hi! How are you?", "greeting", "neutral", "medium"),
        Turn("I'm fine, thanks", "greeting", "positive", "medium", {"intent": "smalltalk"}),
        Turn("I'm tired of this bug", "discovery", "neutral", "medium", {"msg.sentiment.label": "negative"}),
        Turn("Hey, I'm Bob.", "engaged", "neutral", "medium", {"intent": "greeting"}, learned={"name": "Bob"}),
        Turn("I'm Happy with the fix", "engaged", "positive", "medium", learned={"name": "Bob"}),
    ],
    "likes_and_dislikes": [
        Turn("I love hiking and jazz", "discovery", "positive", "medium", learned={"likes": ["hiking", "jazz"]}),
        Turn("I don't like early meetings", "engaged", "positive", "medium",
             learned={"likes": ["hiking", "jazz"], "dislikes": ["early meetings"]}),
        Turn("Actually I hate jazz. I like it when you answer quickly", "engaged", "positive", "medium",
             {"msg.sentiment.label": "mixed"}, learned={"likes": ["hiking"], "dislikes": ["early meetings", "jazz"]}),
    ],
    "timezone_and_language_from_metadata": [
        Turn("Hello", "greeting", "neutral", "medium", learned={"timezone": "Europe/Paris", "language": "fr-FR"},
             metadata={"userTimezone": "Europe/Paris", "locale": "fr-FR"}),
        Turn("What time is the webinar?", "discovery", "neutral", "medium",
             learned={"timezone": "America/New_York", "language": "fr-FR"}, metadata={"timezone": "America/New_York"}),
        Turn("ok", "engaged", "positive", "medium", learned={"timezone": "America/New_York", "language": "fr-FR"}),
    ],
    "new_problem_after_resolution_reopens_discovery": [
        Turn("Hi", "greeting", "neutral", "medium"),
        Turn("I can't export my report to PDF", "discovery", "neutral", "medium"),
        Turn("I'm on the free plan, does that matter?", "engaged", "positive", "medium"),
        Turn("That worked, thank you!", "resolution", "positive", "medium"),
        Turn("Another issue: the mobile app won't load my projects", "discovery", "positive", "medium"),
        Turn("It's an iPhone 12", "engaged", "positive", "medium"),
        Turn("Perfect, thanks a lot", "resolution", "positive", "medium"),
        Turn("Goodbye", "closing", "positive", "medium"),
        Turn("Wait, one more problem: my password reset email never arrived", "discovery", "neutral", "medium"),
    ],
    "stage_never_goes_backwards": [
        Turn("Hello", "greeting", "neutral", "medium"),
        Turn("How do I add a teammate to my workspace?", "discovery", "neutral", "medium"),
        Turn("Where is the members page?", "engaged", "neutral", "medium"),
        Turn("Hi again!", "engaged", "neutral", "medium", {"intent": "greeting"}),
        Turn("Thanks, I found it", "resolution", "positive", "medium"),
        Turn("Is it free?", "resolution", "positive", "medium"),
        Turn("Hello?", "resolution", "positive", "medium"),
        Turn("Have a nice day", "closing", "positive", "medium"),
        Turn("ok thanks", "closing", "positive", "medium"),
        Turn("Hi", "closing", "positive", "low"),
    ],
    "smalltalk_moves_on_after_a_while": [
        Turn("Hey", "greeting", "neutral", "medium"),
        Turn("How's it going?", "greeting", "neutral", "medium", {"intent": "smalltalk"}),
        Turn("Haha nice weather today", "discovery", "positive", "medium", {"intent": "smalltalk"}),
    ],
    "topics_accumulate_with_counts": [
        Turn("My password reset email never arrives", "discovery", "neutral", "medium",
             {"topic:password": 1, "msg.topics": lambda topics: "password reset email" in topics}),
        Turn("I requested the password reset twice", "engaged", "neutral", "medium",
             {"topic:password": 2, "topic:reset": 2}),
        Turn("Still no password emails in my inbox", "engaged", "negative", "medium",
             {"topic:password": 3, "topic:email": 2, "topic:inbox": 1,
              "topics": lambda t: t[0]["topic"] == "password"}),
    ],
    "running_sentiment_decays": [
        Turn("This is awful and I am very angry", "discovery", "negative", "medium",
             {"msg.sentiment.label": "negative", "sentiment.score": below(-0.5)}),
        Turn("The parcel was sent on Monday", "engaged", "negative", "medium",
             {"msg.sentiment.label": "neutral", "sentiment.score": below(-0.3)}),
        Turn("It was placed on Monday", "engaged", "negative", "medium", {"sentiment.score": above(-0.3)}),
        Turn("Great, the support is wonderful and very helpful!", "engaged", "positive", "medium"),
    ],
    "agent_confidence_is_carried": [
        Turn("Hello", "greeting", "neutral", "medium", {"agentConfidence": 0.73, "msg.agentConfidence": 0.73},
             confidence=0.7349),
        Turn("Can you check my order?", "discovery", "neutral", "medium", {"agentConfidence": 1.0}, confidence=1.7),
        Turn("And the delivery date?", "engaged", "neutral", "medium", {"agentConfidence": 0.0}, confidence=-0.2),
    ],
    "gratitude_feedback_request_question_intents": [
        Turn("Thank you so much, that was really helpful", "greeting", "positive", "medium", {"intent": "gratitude"}),
        Turn("It would be nice if the app had a dark mode", "discovery", "positive", "medium", {"intent": "feedback"}),
        Turn("Your support team is amazing, great job!", "engaged", "positive", "medium",
             {"intent": "feedback", "msg.sentiment.label": "positive"}),
        Turn("Can you help me reset my password?", "engaged", "positive", "medium", {"intent": "request"}),
        Turn("What does error 42 mean?", "engaged", "positive", "medium", {"intent": "question"}),
        Turn("The invoice was sent to my old address", "engaged", "positive", "medium", {"intent": "statement"}),
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
        assert turn.stage and turn.sentiment and turn.engagement, f"turn {number} must state its expectations"
        checks = {"stage": turn.stage, "sentiment.label": turn.sentiment, "engagement.level": turn.engagement,
                  "preferences": turn.learned, "msg.stage": turn.stage, "msg.preferences": turn.learned,
                  **turn.expect}
        for path, expected in checks.items():
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
    assert set(message) == {"stage", "intent", "topics", "sentiment", "runningSentiment", "engagement",
                            "agentConfidence", "preferences"}
    assert {"export", "button", "export button fail"} <= set(message["topics"])
    assert message["engagement"] == state["engagement"] and message["runningSentiment"] == state["sentiment"]
    assert message["preferences"] == state["preferences"]
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
    assert state["updatedAt"] == "2025-03-01T10:00:20.000Z"  # START + 20 s + 3600 s, written as the API writes times
    quick = run([Turn("Hello"), Turn("I have a question about billing", after_seconds=5)])[-1][0]
    assert quick["engagement"]["score"] > state["engagement"]["score"]
