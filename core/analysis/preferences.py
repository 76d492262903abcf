"""Facts the user states about themselves: name, how to address them, likes and dislikes,
plus timezone and language from the client's metadata.

Only keys that are known appear in the preferences dict. A later statement of a name overrides an
earlier one; likes and dislikes accumulate (deduplicated, most recent kept).
"""

from __future__ import annotations

import re
from typing import Any

from core.analysis.keywords import STOPWORDS

MAX_LIKES = 10
MAX_ITEM_WORDS = 4
MAX_VALUE_CHARS = 64  # metadata values and names are user-controlled: keep them short

# Capitalised words after "I'm" that are not names ("I'm Fine", "I'm Back", "I'm English").
NOT_NAMES = frozenset(
    """
    fine good great ok okay well tired happy sad sorry sure here there back new busy bored done ready confused
    lost angry upset excited glad alright cool hungry sick stuck not so just very really also still home free
    available interested curious worried afraid frustrated annoyed late early satisfied pleased impressed
    disappointed thankful grateful in on at a an the from with about only always never aware what who
    english american british french german spanish italian canadian indian australian chinese japanese
    """.split()
)
NOT_ADDRESS_FORMS = frozenset(
    "back later tomorrow today tonight now when if at on asap again soon please maybe sometime anytime whenever "
    "a an the crazy old".split()
)
NOT_SURNAMES = STOPWORDS | NOT_NAMES  # "my name is Alice Please help": "Please" starts the next sentence
PRONOUNS = frozenset("it that this them these those you him her us me everything something anything".split())
LEADING_FILLER = frozenset("the a an my your our their his her to some".split())

_MY_NAME_IS = re.compile(r"\b(?i:my name(?:'s| is))\s+([A-Za-z][\w'-]*)(?:\s+([A-Z][a-z][\w'-]*))?")
_I_AM_NAME = re.compile(
    r"\b(?i:i'm|i am|im)\s+([A-Z][a-z'-]+)(?=\s*(?:$|[,.!?;)]|\s(?i:and|from|here|by the way)\b))"
)
_CALL_ME = re.compile(r"\b(?i:call me)\s+([A-Za-z][\w'-]*)")
# Likes and dislikes are matched against the lowercased message.
_LIKES = re.compile(r"\bi\s+(?:really\s+|absolutely\s+|also\s+|just\s+)?(?:like|love|enjoy|adore)\s+([^.;!?\n]+)")
_DISLIKES = re.compile(
    r"\bi\s+(?:really\s+|absolutely\s+|also\s+|just\s+)?(?:hate|dislike|detest|can't stand|cannot stand"
    r"|don't like|do not like|don't enjoy|do not enjoy)\s+([^.;!?\n]+)"
)
_CLAUSE_END = re.compile(r"\s+(?:but|because|since|though|although|when|while|if|so|which|except)\b.*")
_ITEM_BREAK = re.compile(r",|\s+(?:and|or|&)\s+")


def update_preferences(current: dict[str, Any], text: str, client_metadata: dict[str, Any] | None) -> dict[str, Any]:
    """A new preferences dict: `current` plus what this message and its metadata state."""
    preferences = {**current, "likes": list(current.get("likes", ())), "dislikes": list(current.get("dislikes", ()))}
    name = _stated_name(text)
    if name:
        preferences["name"] = name
    call_me = _CALL_ME.search(text)
    if call_me and call_me.group(1).lower() not in NOT_ADDRESS_FORMS:
        preferences["addressAs"] = _capitalised(call_me.group(1))
        preferences.setdefault("name", preferences["addressAs"])
    lowered = text.lower()
    for item in _items(_LIKES, lowered):
        _remember(item, keep_in=preferences["likes"], drop_from=preferences["dislikes"])
    for item in _items(_DISLIKES, lowered):
        _remember(item, keep_in=preferences["dislikes"], drop_from=preferences["likes"])
    _copy_metadata(preferences, client_metadata or {})
    return {key: value for key, value in preferences.items() if value not in (None, [])}


def _stated_name(text: str) -> str | None:
    explicit = _MY_NAME_IS.search(text)
    if explicit and explicit.group(1).lower() not in NOT_NAMES:
        first, second = explicit.groups()
        # "my name is Mary Jane" is two names; "my name is Alice Please help" is one name and a request.
        surname = second if second and second.lower() not in NOT_SURNAMES else None
        return _capitalised(f"{first} {surname}" if surname else first)
    implied = _I_AM_NAME.search(text)  # capitalised on purpose: "I'm Bob" yes, "I'm bob..." too ambiguous
    if implied and implied.group(1).lower() not in NOT_NAMES and not implied.group(1).endswith(("ing", "ed")):
        return implied.group(1)
    return None


def name_words(preferences: dict[str, Any]) -> frozenset[str]:
    """The lowercased words of the user's name and address form: personal, so never topics."""
    return frozenset(word for key in ("name", "addressAs") for word in str(preferences.get(key, "")).lower().split())


def _capitalised(name: str) -> str:
    return " ".join(part[:1].upper() + part[1:] for part in name.split())[:MAX_VALUE_CHARS]


def _items(pattern: re.Pattern[str], lowered: str) -> list[str]:
    items = []
    for match in pattern.finditer(lowered):
        for raw in _ITEM_BREAK.split(_CLAUSE_END.sub("", match.group(1))):
            words = raw.split()
            while words and words[0] in LEADING_FILLER:
                words = words[1:]
            if words and words[0] not in PRONOUNS:
                items.append(" ".join(words[:MAX_ITEM_WORDS])[:MAX_VALUE_CHARS])
    return items


def _remember(item: str, keep_in: list[str], drop_from: list[str]) -> None:
    if item in drop_from:
        drop_from.remove(item)  # the user changed their mind
    if item in keep_in:
        keep_in.remove(item)
    keep_in.append(item)
    del keep_in[:-MAX_LIKES]


def _copy_metadata(preferences: dict[str, Any], metadata: dict[str, Any]) -> None:
    for target, keys in (("timezone", ("userTimezone", "timezone")), ("language", ("language", "locale"))):
        value = next((metadata[key] for key in keys if isinstance(metadata.get(key), str) and metadata[key]), None)
        if value:
            preferences[target] = value[:MAX_VALUE_CHARS]
