"""Conversation state, updated once per exchange (one user message and the agent's reply).

`analyze_exchange` is a pure function: it reads the previous state and returns a new one, never
re-reading the history. Everything it needs from earlier turns (running sentiment, topic counts, the
last user timestamp, the last few message lengths) is carried in the state under `_internal`, each part
bounded, so a turn costs the same on the 500th exchange as on the first.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from core.analysis import engagement
from core.analysis.intent import (
    asks_clarification,
    classify_intent,
    signals_resolution,
    states_problem,
    without_greeting,
)
from core.analysis.keywords import extract_keywords
from core.analysis.preferences import name_words, update_preferences
from core.analysis.sentiment import STRONG_CLAUSE, MessageSentiment, analyze_sentiment, label_for
from core.clock import isoformat

Stage = Literal["greeting", "discovery", "engaged", "resolution", "closing"]
STAGES: tuple[Stage, ...] = get_args(Stage)
GREETING_TURN_LIMIT = 2  # after this many exchanges of pleasantries, the conversation is discovering
DISCOVERY_TURN_LIMIT = 2  # after this many exchanges of clarifying questions, it is engaged anyway
SENTIMENT_DECAY = 0.6  # weight of the running sentiment against the new message's
MAX_TOPICS_SHOWN = 20
MAX_TOPICS_TRACKED = 60  # beyond this the least frequent, least recent topics are forgotten
# A long message is read by its opening and its ending, where greetings, requests, questions and
# sign-offs are; this bounds the cost of a turn whatever the size of the message.
FOCUS_HEAD_CHARS, FOCUS_TAIL_CHARS = 1200, 400
SHORT_REPLY_WORDS = engagement.SHORT_REPLY_WORDS


def initial_state() -> dict[str, Any]:
    return {
        "stage": "greeting",
        "intent": None,
        "topics": [],
        "sentiment": {"label": "neutral", "score": 0.0},
        "engagement": {"level": "medium", "score": 0.5},
        "agentConfidence": None,
        "preferences": {},
        "turns": 0,
        "updatedAt": None,
        "_internal": {
            "topicCounts": {},  # topic -> [count of messages mentioning it, last turn mentioned]
            "lastUserAt": None,
            "recentWordCounts": [],
            "shortReplyStreak": 0,
            "turnsInStage": 0,
            "sentimentStrengths": {"positive": 0.0, "negative": 0.0},
        },
    }


def public_state(state: dict[str, Any] | None) -> dict[str, Any]:
    """The state as shown by the API: without the private bookkeeping."""
    return {key: value for key, value in (state or initial_state()).items() if key != "_internal"}


def analyze_exchange(
    previous: dict[str, Any] | None,
    user_text: str,
    agent_text: str,
    agent_confidence: float,
    sent_at: datetime,
    client_metadata: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Returns (new_state, message_analysis). `previous` is the state returned last time (None on the first turn).
    Both dicts are JSON-serialisable with camelCase keys, ready to store and to return in the API."""
    state = previous or initial_state()
    internal = {**initial_state()["_internal"], **state.get("_internal", {})}
    first_turn = state.get("turns", 0) == 0
    turn = state.get("turns", 0) + 1
    text = _focus(user_text.replace("\u2019", "'"))  # curly apostrophes: "I’m", "don’t"
    sent_at = sent_at.replace(tzinfo=UTC) if sent_at.tzinfo is None else sent_at.astimezone(UTC)

    content = without_greeting(text)
    sentiment = analyze_sentiment(content)
    intent = classify_intent(text, sentiment)
    stage, turns_in_stage = _next_stage(state["stage"], internal["turnsInStage"], intent, text, agent_text)
    preferences = update_preferences(state.get("preferences", {}), text, client_metadata)
    keywords = extract_keywords(content, name_words(preferences))
    topic_counts = _count_topics(internal["topicCounts"], keywords, turn)
    running_sentiment, strengths = _running_sentiment(
        None if first_turn else state["sentiment"]["score"], internal["sentimentStrengths"], sentiment
    )

    word_count = len(user_text.split())
    short_streak = internal["shortReplyStreak"] + 1 if word_count <= SHORT_REPLY_WORDS else 0
    last_user_at = internal["lastUserAt"]
    seconds_since_previous = (
        max(0.0, (sent_at - datetime.fromisoformat(last_user_at)).total_seconds()) if last_user_at else None
    )
    message_engagement = engagement.message_engagement(
        text, word_count, seconds_since_previous, internal["recentWordCounts"], short_streak
    )
    engagement_score = engagement.smoothed(state["engagement"]["score"], message_engagement)
    engagement_summary = {"level": engagement.level_for(engagement_score), "score": round(engagement_score, 3)}
    confidence = _confidence(agent_confidence)

    new_state = {
        "stage": stage,
        "intent": intent,
        "topics": _top_topics(topic_counts),
        "sentiment": running_sentiment,
        "engagement": engagement_summary,
        "agentConfidence": confidence,
        "preferences": preferences,
        "turns": turn,
        "updatedAt": isoformat(sent_at),  # as every other timestamp of the API: "2025-03-01T09:00:20.000Z"
        "_internal": {
            "topicCounts": topic_counts,
            "lastUserAt": sent_at.isoformat(),
            "recentWordCounts": [*internal["recentWordCounts"], word_count][-engagement.RECENT_WINDOW:],
            "shortReplyStreak": short_streak,
            "turnsInStage": turns_in_stage,
            "sentimentStrengths": strengths,
        },
    }
    # What the conversation looked like after this exchange: one entry of the state history.
    message_analysis = {
        "stage": stage,
        "intent": intent,
        "topics": keywords,
        "sentiment": sentiment.as_dict(),
        "runningSentiment": running_sentiment,
        "engagement": engagement_summary,
        "agentConfidence": confidence,
        "preferences": preferences,
    }
    return new_state, message_analysis


def _focus(text: str) -> str:
    if len(text) <= FOCUS_HEAD_CHARS + FOCUS_TAIL_CHARS:
        return text
    return text[:FOCUS_HEAD_CHARS] + "\n" + text[-FOCUS_TAIL_CHARS:]


def _next_stage(stage: str, turns_in_stage: int, intent: str, user_text: str, agent_text: str) -> tuple[str, int]:
    """The stage after this exchange and how many exchanges have ended in it.

    Stages only move forward, except that a new problem after resolution or closing reopens discovery."""
    new_need = states_problem(user_text) or intent in ("request", "complaint")
    if stage in ("resolution", "closing") and new_need and intent != "farewell":
        return "discovery", 1

    candidate = stage
    if intent == "farewell":
        candidate = "closing"
    elif stage != "greeting" and signals_resolution(user_text, intent):
        candidate = "resolution"
    elif stage == "greeting":
        pleasantry = intent in ("greeting", "smalltalk", "gratitude")
        if not pleasantry or turns_in_stage >= GREETING_TURN_LIMIT:
            candidate = "discovery"
    elif stage == "discovery" and (not asks_clarification(agent_text) or turns_in_stage >= DISCOVERY_TURN_LIMIT):
        candidate = "engaged"

    next_stage = max(stage, candidate, key=STAGES.index)
    return next_stage, turns_in_stage + 1 if next_stage == stage else 1


def _count_topics(previous: dict[str, list[int]], keywords: list[str], turn: int) -> dict[str, list[int]]:
    counts = {topic: list(entry) for topic, entry in previous.items()}
    for keyword in keywords:
        counts[keyword] = [counts.get(keyword, [0, 0])[0] + 1, turn]
    if len(counts) > MAX_TOPICS_TRACKED:
        kept = sorted(counts.items(), key=lambda item: (item[1][0], item[1][1]), reverse=True)[:MAX_TOPICS_TRACKED]
        counts = dict(kept)
    return counts


def _top_topics(counts: dict[str, list[int]]) -> list[dict[str, Any]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1][0], item[0]))[:MAX_TOPICS_SHOWN]
    return [{"topic": topic, "count": count} for topic, (count, _) in ranked]


def _running_sentiment(
    previous_score: float | None, previous_strengths: dict[str, float], message: MessageSentiment
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Exponentially decayed sentiment; mixed while strong positive and negative feelings are both recent."""
    if previous_score is None:
        strengths = {"positive": message.positive_strength, "negative": message.negative_strength}
        return message.as_dict(), _rounded(strengths)
    score = _decayed(previous_score, message.score)
    strengths = {
        "positive": _decayed(previous_strengths["positive"], message.positive_strength),
        "negative": _decayed(previous_strengths["negative"], message.negative_strength),
    }
    mixed = min(strengths.values()) >= STRONG_CLAUSE
    return {"label": label_for(score, mixed), "score": round(score, 3)}, _rounded(strengths)


def _decayed(running: float, latest: float) -> float:
    return SENTIMENT_DECAY * running + (1 - SENTIMENT_DECAY) * latest


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 3) for key, value in values.items()}


def _confidence(value: float) -> float:
    if not math.isfinite(value):
        return 0.0
    return round(min(1.0, max(0.0, value)), 2)
