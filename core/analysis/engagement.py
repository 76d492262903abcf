"""How engaged the user is, as a smoothed score 0..1 and a level.

Each message is scored from its length, the questions it asks, how quickly it followed the previous
one and whether messages are getting longer or shorter; the conversation's score is an exponential
moving average of those, so a single short reply does not flip the level but a run of them does.
"""

from __future__ import annotations

import math
import re
from typing import Literal, get_args

Level = Literal["high", "medium", "low"]
LEVELS: tuple[Level, ...] = get_args(Level)
FULL_LENGTH_WORDS = 40  # a message this long earns the whole length component
CADENCE_HALF_LIFE_SECONDS = 120.0  # replying after this long halves the cadence component
UNKNOWN_CADENCE = 0.5  # first message: nothing to compare with
LENGTH_WEIGHT, QUESTION_WEIGHT, CADENCE_WEIGHT = 0.55, 0.2, 0.25
TREND_WEIGHT = 0.15  # getting longer or shorter than recent messages moves the score by up to this
SHORT_REPLY_WORDS = 2
SHORT_STREAK_PENALTY, MAX_SHORT_STREAK_PENALTY = 0.1, 0.3  # per repeated short reply after the first
SMOOTHING = 0.5  # weight of the previous smoothed score
HIGH_THRESHOLD, LOW_THRESHOLD = 0.6, 0.35
RECENT_WINDOW = 5

_QUESTION = re.compile(r"\?+")


def length_factor(word_count: int) -> float:
    return min(1.0, math.log1p(word_count) / math.log1p(FULL_LENGTH_WORDS))


def message_engagement(
    text: str, word_count: int, seconds_since_previous: float | None, recent_word_counts: list[int], short_streak: int
) -> float:
    """Score 0..1 of one user message; `short_streak` counts consecutive short replies including this one."""
    length = length_factor(word_count)
    questions = min(1.0, len(_QUESTION.findall(text)) / 2)
    cadence = (
        UNKNOWN_CADENCE
        if seconds_since_previous is None
        else 1.0 / (1.0 + seconds_since_previous / CADENCE_HALF_LIFE_SECONDS)
    )
    trend = 0.0
    if recent_word_counts:
        recent = sum(length_factor(count) for count in recent_word_counts) / len(recent_word_counts)
        trend = TREND_WEIGHT * (length - recent)
    streak_penalty = min(MAX_SHORT_STREAK_PENALTY, SHORT_STREAK_PENALTY * max(0, short_streak - 1))
    score = LENGTH_WEIGHT * length + QUESTION_WEIGHT * questions + CADENCE_WEIGHT * cadence + trend - streak_penalty
    return min(1.0, max(0.0, score))


def smoothed(previous_score: float, message_score: float) -> float:
    return SMOOTHING * previous_score + (1 - SMOOTHING) * message_score


def level_for(score: float) -> str:
    if score >= HIGH_THRESHOLD:
        return "high"
    if score < LOW_THRESHOLD:
        return "low"
    return "medium"
