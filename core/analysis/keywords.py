"""Keywords and short keyphrases of a message, stdlib only.

Content words are the words left after removing stopwords and chat filler; each is normalised
(lowercase, possessive and plural endings stripped). Adjacent content words with no punctuation or
stopword between them also form a keyphrase ("password reset"), RAKE-style, up to three words.
"""

from __future__ import annotations

import functools
import re

MAX_KEYWORDS_PER_MESSAGE = 8
MAX_PHRASE_WORDS = 3
MIN_WORD_CHARS = 3
MAX_WORD_CHARS = 30  # longer "words" are pasted identifiers or noise

# A word, or (empty group) something that breaks a phrase: punctuation, a number, " - ".
_ADDRESS = re.compile(r"\S+@\S+|https?://\S+|www\.\S+")  # e-mail addresses and links are not topics
_TOKEN = re.compile(r"([a-z][a-z'-]*[a-z]|[a-z])|[^\w\s'-]|\d[\w.]*|_|\s-+\s")

STOPWORDS = frozenset(
    """
    a about above after again against all almost also although always am among an and another any anybody
    anyone anything anyway anywhere are aren't around as at away back be became because been before being
    below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't done
    down during each either else enough etc even ever every everybody everyone everything everywhere few
    for from further get gets getting give given go goes going gone got gotten had hadn't has hasn't have
    haven't having he he'd he'll he's her here here's hers herself him himself his how how's however i i'd
    i'll i'm i've if in instead into is isn't it it's its itself just keep kind know last least less let
    let's like likely lot lots made make makes many may maybe me might mine more most much must mustn't my
    myself need needs never new next no nobody none nor not nothing now of off often oh ok okay old on once
    one only onto or other others otherwise our ours ourselves out over own per perhaps please quite rather
    really right said same say says see seem seems several shall shan't she she'd she'll she's should
    shouldn't since so some somebody someone something sometimes somewhat soon still such sure take tell
    than that that's the their theirs them themselves then there there's these they they'd they'll they're
    they've thing things think this those though through thus till to today together too toward towards try
    trying under unless until up upon us use used using very via want wants was wasn't way we we'd we'll
    we're we've well went were weren't what what's whatever when whenever where where's whether which while
    who who's whoever whole whom whose why will with within without won't would wouldn't yes yet you you'd
    you'll you're you've your yours yourself yourselves
    hi hello hey hiya howdy thanks thank thx bye goodbye yeah yep nope yup lol haha hmm um uh ah wow cool
    great good fine nice sorry pls plz also actually basically literally probably definitely guess mean
    feel felt help able again already anymore tried works worked work working love loved hate hated enjoy dislike
    name call called one two three four five six seven eight nine ten first second third
    """.split()
)


def extract_keywords(text: str, ignored: frozenset[str] = frozenset()) -> list[str]:
    """The message's top keywords and keyphrases, most frequent first, then by first appearance.
    `ignored` words (lowercase) are treated like stopwords: the user's own name is not a topic."""
    counts: dict[str, int] = {}
    first_seen: dict[str, tuple[int, int]] = {}  # term -> (position, -words): a phrase precedes its words
    run: list[str] = []
    for position, word in enumerate(_TOKEN.findall(_ADDRESS.sub(" . ", text.lower()))):
        term = _normalise(word) if word and word.strip("'-").removesuffix("'s") not in ignored else None
        if term is None:
            if run:
                _count_phrase(run, counts, first_seen)
                run = []
        else:
            _count(term, (position, -1), counts, first_seen)
            run.append(term)
    _count_phrase(run, counts, first_seen)
    ranked = sorted(counts, key=lambda term: (-counts[term], first_seen[term]))
    return ranked[:MAX_KEYWORDS_PER_MESSAGE]


@functools.lru_cache(maxsize=8192)  # chat vocabulary repeats: normalise each word once
def _normalise(word: str) -> str | None:
    """Lemma-ish form of a content word, or None for stopwords and noise."""
    word = word.strip("'-")
    if word.endswith("'s"):
        word = word[:-2]
    if word in STOPWORDS or not MIN_WORD_CHARS <= len(word) <= MAX_WORD_CHARS or "'" in word:
        return None
    singular = _singular(word)
    return None if singular in STOPWORDS else singular  # "keeps", "thanks"


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _count_phrase(run: list[str], counts: dict[str, int], first_seen: dict[str, tuple[int, int]]) -> None:
    if 2 <= len(run) <= MAX_PHRASE_WORDS:
        _count(" ".join(run), (first_seen[run[0]][0], -len(run)), counts, first_seen)


def _count(term: str, seen_at: tuple[int, int], counts: dict[str, int], first_seen: dict[str, tuple[int, int]]) -> None:
    counts[term] = counts.get(term, 0) + 1
    first_seen.setdefault(term, seen_at)
