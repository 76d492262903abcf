"""Message sentiment from VADER, scored clause by clause.

VADER's cost grows quadratically with the number of tokens it is given (every token rescans the token
list), so a message is split into clauses, clauses without any lexicon word are skipped (VADER would
score them 0 anyway) and at most a fixed number of characters is sent to the model. Scoring clauses
separately is also what lets us see a message that is positive in one part and negative in another.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

Label = Literal["positive", "neutral", "negative", "mixed"]
LABELS: tuple[Label, ...] = get_args(Label)
NEUTRAL_BAND = 0.05  # VADER's own convention: compound scores within ±0.05 are neutral
STRONG_CLAUSE = 0.3  # a clause at least this polar each way makes the message mixed
MIXED_PROPORTION = 0.2  # ... as does one clause whose positive and negative shares both reach this
HEAD_BUDGET_CHARS = 500  # characters of sentiment-bearing clauses scored from the start of a message
TAIL_BUDGET_CHARS = 250  # ... and from its end, where conclusions tend to be
MAX_CLAUSE_CHARS = 240  # longer runs without punctuation are cut so no single VADER call is slow

_CLAUSE_BREAK = re.compile(r"(?<=[.!?;])\s+|\n+|\s+(?=(?:but|however|although|though)\b)", re.IGNORECASE)
_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class MessageSentiment:
    score: float  # -1..1
    label: str  # positive | neutral | negative | mixed
    positive_strength: float  # strongest positive clause, 0..1
    negative_strength: float  # strongest negative clause as a magnitude, 0..1

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(self.score, 3)}


NEUTRAL = MessageSentiment(score=0.0, label="neutral", positive_strength=0.0, negative_strength=0.0)


@functools.cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()  # reads the lexicon files: build once, on first use


def label_for(score: float, mixed: bool) -> str:
    if mixed:
        return "mixed"
    if score >= NEUTRAL_BAND:
        return "positive"
    if score <= -NEUTRAL_BAND:
        return "negative"
    return "neutral"


def analyze_sentiment(text: str) -> MessageSentiment:
    analyzer = _analyzer()
    clauses = [clause for clause in _clauses(text) if _may_carry_sentiment(clause, analyzer.lexicon)]
    scores = [analyzer.polarity_scores(clause) for clause in _within_budget(clauses)]
    compounds = [s["compound"] for s in scores if abs(s["compound"]) >= NEUTRAL_BAND]
    if not compounds:
        return NEUTRAL
    positive_strength = max(0.0, *compounds)
    negative_strength = -min(0.0, *compounds)
    mixed = (positive_strength >= STRONG_CLAUSE and negative_strength >= STRONG_CLAUSE) or any(
        s["pos"] >= MIXED_PROPORTION and s["neg"] >= MIXED_PROPORTION for s in scores
    )
    score = sum(compounds) / len(compounds)
    return MessageSentiment(score, label_for(score, mixed), positive_strength, negative_strength)


def _clauses(text: str) -> list[str]:
    clauses = []
    for clause in _CLAUSE_BREAK.split(text):
        clause = clause.strip()
        while len(clause) > MAX_CLAUSE_CHARS:
            cut = clause.rfind(" ", 0, MAX_CLAUSE_CHARS)
            cut = cut if cut > 0 else MAX_CLAUSE_CHARS
            clauses.append(clause[:cut])
            clause = clause[cut:].lstrip()
        if clause:
            clauses.append(clause)
    return clauses


def _may_carry_sentiment(clause: str, lexicon: dict[str, float]) -> bool:
    if not clause.isascii():
        return True  # emoji are translated to lexicon words inside VADER
    lowered = clause.lower()
    # VADER looks words up as written and without surrounding punctuation (":)" vs "great!")
    return not lexicon.keys().isdisjoint(lowered.split()) or not lexicon.keys().isdisjoint(_WORD.findall(lowered))


def _within_budget(clauses: list[str]) -> list[str]:
    """The clauses that fit in the head budget, then those from the end that fit in the tail budget."""
    if sum(len(clause) for clause in clauses) <= HEAD_BUDGET_CHARS + TAIL_BUDGET_CHARS:
        return clauses
    head = _take_within(clauses, HEAD_BUDGET_CHARS)
    tail = _take_within(clauses[len(head):][::-1], TAIL_BUDGET_CHARS)
    return head + tail[::-1]


def _take_within(clauses: list[str], budget: int) -> list[str]:
    taken, used = [], 0
    for clause in clauses:
        used += len(clause)
        if used > budget:
            break
        taken.append(clause)
    return taken
