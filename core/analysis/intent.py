"""Rule-based intent of a user message, and the cues the stage machine needs.

Cue phrases are matched with compiled regular expressions; the message's sentiment (from VADER)
separates complaints from neutral problem reports and feedback from plain statements.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

from core.analysis.sentiment import MessageSentiment

Intent = Literal["question", "request", "complaint", "greeting", "farewell", "feedback", "gratitude", "smalltalk",
                 "statement"]
INTENTS: tuple[Intent, ...] = get_args(Intent)
# A complaint is upset, not just about something negative ("what does error 42 mean?" is a question):
COMPLAINT_SCORE = -0.3  # negative messages this strong with an upset cue are complaints
OUTRIGHT_COMPLAINT_SCORE = -0.5  # ... and this strong even without one
FEEDBACK_SCORE = 0.3  # opinions of the product at least this polar are feedback
GREETING_REMAINDER_WORDS = 2  # words allowed besides the greeting, small talk or an introduction
OPENING_CHARS = 300  # small talk opens a message ...
CLOSING_CHARS = 300  # ... and a farewell ends it: no need to scan a long message for them


def _cue(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)  # matched against lowercased text: much faster than IGNORECASE


_GREETING = _cue(
    r"^\W*(?:hi|hello|hey|hiya|howdy|greetings|good (?:morning|afternoon|evening)|yo)\b"
    r"(?:\W+(?:there|all|team|everyone)\b)?"
)
_NAME_INTRO = re.compile(r"\b(?i:my name(?:'s| is)|this is|call me)\s+\w+|\b(?i:i'm|i am)\s+[A-Z]\w*")
_SMALLTALK = _cue(
    r"\b(?:how are (?:you|u|things)|how's it going|how is it going|how have you been|what's up|whats up|wassup"
    r"|nice to meet you|pleased to meet you|how's your day|how is your day|nice weather|the weather"
    r"|lol|haha\w*|not much)\b|^\W*(?:i'm|i am|im)\s+(?:fine|good|great|ok|okay|well|alright|doing \w+)\b"
)
_FAREWELL = _cue(
    r"\b(?:bye|goodbye|good bye|bye-bye|see you|see ya|talk (?:to you )?(?:later|soon)|catch you later"
    r"|have a (?:nice|good|great|lovely) (?:day|evening|night|weekend|one)|good night|take care"
    r"|that's all|that is all|nothing else|no more questions)\b"
)
_GRATITUDE = _cue(r"\b(?:thanks|thank you|thank u|thx|many thanks|appreciate it|appreciated|grateful|much obliged)\b")
_COMPLAINT = _cue(
    r"\b(?:ridiculous|unacceptable|terrible|awful|worst|horrible|useless|disappointed|disappointing"
    r"|frustrat\w*|angry|furious|annoy\w*|refund|complain\w*|waste|scam|rubbish|garbage|sucks?)\b"
)
_PROBLEM = _cue(
    r"\b(?:problem|issue|error|bug|broken|crash\w*|fail\w*|stuck|trouble|glitch\w*|not working|doesn't work"
    r"|does not work|won't (?:work|load|open|start)|can't|cannot|unable to|keeps? \w+ing|missing|wrong"
    r"|never (?:arrived|came|received)|help me|need help|how (?:do|can) i)\b"
)
_RESOLVED = _cue(
    r"\b(?:(?:that|it|this) (?:fixed|solved|worked|helped|did it|did the trick)|works now|working now"
    r"|(?:problem|issue) (?:is )?(?:solved|fixed|resolved|gone)|all (?:good|set|sorted)|perfect|got it)\b"
)
_FEEDBACK = _cue(
    r"\b(?:feedback|suggest\w*|would be (?:nice|great|better|cool|helpful)|you should|you guys should"
    r"|should (?:add|have|be)|feature request|in my opinion)\b"
)
_PRODUCT = _cue(r"\b(?:design|feature|interface|ui|ux|update|layout|app|website|site|product|service|support)\b")
_REQUEST = _cue(
    r"^\W*(?:please|pls|can you|could you|would you|will you|can u|i need|i want|i'd like|i would like"
    r"|help me|show me|tell me|give me|send me|let me know|i'm looking for|i am looking for)\b|\bplease\b"
)
_WORD = re.compile(r"\w+")
_QUESTION_START = _cue(
    r"^\W*(?:what|why|how|when|where|who|which|whose|is|are|do|does|did|can|could|should|would|will|am"
    r"|was|were|have|has)\b"
)


def classify_intent(text: str, sentiment: MessageSentiment) -> str:
    """question | request | complaint | greeting | farewell | feedback | gratitude | smalltalk | statement"""
    lowered = text.lower()
    if _FAREWELL.search(lowered[-CLOSING_CHARS:]):
        return "farewell"
    if _is_greeting(text, lowered):
        return "greeting"
    if _is_complaint(lowered, sentiment):
        return "complaint"
    if _SMALLTALK.search(lowered[:OPENING_CHARS]):
        return "smalltalk"
    # "Thanks! And how do I ...?" goes on asking: the question is what it is about, not the thanks.
    if _GRATITUDE.search(lowered) and sentiment.label != "negative" and "?" not in text:
        return "gratitude"
    if _is_feedback(lowered, sentiment):
        return "feedback"
    if _REQUEST.search(lowered):
        return "request"
    if "?" in text or _QUESTION_START.match(lowered):
        return "question"
    return "statement"


def without_greeting(text: str) -> str:
    """The message minus a leading hello: "Good morning" is a formula, not a feeling or a topic."""
    greeting = _GREETING.match(text.lower())
    return text[greeting.end():] if greeting else text


def states_problem(text: str) -> bool:
    return _PROBLEM.search(text.lower()) is not None


def signals_resolution(text: str, intent: str) -> bool:
    """The user says their need is met: thanks, or "that fixed it" without reporting a new problem."""
    return intent == "gratitude" or (_RESOLVED.search(text.lower()) is not None and not states_problem(text))


def _is_greeting(text: str, lowered: str) -> bool:
    """A short hello or introduction, with little else besides small talk."""
    if len(text) > OPENING_CHARS:
        return False
    greeting = _GREETING.match(lowered)
    if greeting is None and _NAME_INTRO.search(text) is None:
        return False
    without_intro = _NAME_INTRO.sub(" ", text[greeting.end() if greeting else 0:])  # needs case: "I'm Bob"
    remainder = _SMALLTALK.sub(" ", without_intro.lower())
    return len(_WORD.findall(remainder)) <= GREETING_REMAINDER_WORDS


def _is_complaint(lowered: str, sentiment: MessageSentiment) -> bool:
    if sentiment.label != "negative":
        return False
    upset = _COMPLAINT.search(lowered) is not None
    return sentiment.score <= OUTRIGHT_COMPLAINT_SCORE or (upset and sentiment.score <= COMPLAINT_SCORE)


def _is_feedback(lowered: str, sentiment: MessageSentiment) -> bool:
    """Suggestions, or opinions (clearly polar or mixed) about the product."""
    if _FEEDBACK.search(lowered):
        return True
    opinionated = sentiment.label == "mixed" or abs(sentiment.score) >= FEEDBACK_SCORE
    return opinionated and _PRODUCT.search(lowered) is not None


_SOLUTION_CUE = _cue(
    r"\b(?:try|you can|you could|go to|click|tap|open|restart|reinstall|update|here's|here is|follow|steps?"
    r"|should)\b"
)


def asks_clarification(agent_text: str) -> bool:
    """The agent's reply only asks the user for more detail (it ends on a question and offers no fix)."""
    return agent_text.rstrip().endswith("?") and _SOLUTION_CUE.search(agent_text.lower()) is None
