"""ELIZA: a keyword / decomposition / reassembly chatbot in the spirit of Weizenbaum's DOCTOR.

All conversational content lives in a JSON script (`scripts/<name>.json`, format described in its
"about" field); this module is only the engine. Everything that changes between turns (reassembly
cycling, remembered replies, turn count) lives in `agent_state`, so a given (state, message) pair
always yields the same reply while replies still vary across a conversation.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from core.agents.base import (
    WORD_CHUNK,
    AgentContext,
    AgentFailure,
    AgentOutput,
    AgentReply,
    chunk_delay_seconds,
    paced,
)

SCRIPT_NAME = re.compile(r"[A-Za-z0-9_-]+")
TOKEN = re.compile(r"[\w']+|[.,;:!?]")
CLAUSE_BREAKS = frozenset(".,;:!?")
REFERENCE = re.compile(r"\((\d+)(:name)?\)")
MAX_CLAUSE_WORDS = 50  # longer clauses are cut into pieces: keeps worst-case regex backtracking tiny
MAX_FRAGMENT_WORDS = 25  # echoing a whole essay back reads badly; its start is enough
MEMORY_LIMIT = 5
MAX_GOTO_DEPTH = 5  # a script with a goto cycle must not hang the worker
MAX_NAME_LENGTH = 40
NAME_EVERY_N_TURNS = 3


@dataclass(frozen=True)
class Decomposition:
    pattern: str
    regex: re.Pattern[str]
    literal_words: frozenset[str]  # all must occur in the clause: a cheap pre-check before the regex
    specificity: int  # number of non-wildcard pattern tokens
    reassemblies: tuple[str, ...]
    memories: tuple[str, ...]
    goto: str | None


@dataclass(frozen=True)
class Keyword:
    word: str
    rank: int
    greeting: bool
    decompositions: tuple[Decomposition, ...]


@dataclass(frozen=True)
class Choice:
    text: str
    thought: str
    confidence: float
    greeting: bool = False
    actions: tuple[str, ...] = ("REPLY",)


class ConversationState:
    """The agent's private per-session state, tolerant of missing or malformed stored values."""

    def __init__(self, stored: dict[str, Any]) -> None:
        cycles = stored.get("cycles")
        memory = stored.get("memory")
        turns = stored.get("turns")
        self.cycles: dict[str, int] = {
            key: value for key, value in (cycles.items() if isinstance(cycles, dict) else ())
            if isinstance(key, str) and isinstance(value, int) and value >= 0
        }
        self.memory: list[str] = [m for m in memory if isinstance(m, str)] if isinstance(memory, list) else []
        self.turns: int = turns if isinstance(turns, int) and turns >= 0 else 0

    def peek(self, key: str, options: int) -> int:
        return self.cycles.get(key, 0) % options

    def advance(self, key: str, options: int) -> None:
        self.cycles[key] = (self.peek(key, options) + 1) % options

    def next_of(self, key: str, options: tuple[str, ...]) -> tuple[int, str]:
        index = self.peek(key, len(options))
        self.advance(key, len(options))
        return index, options[index]

    def remember(self, reply: str) -> None:
        self.memory = [*self.memory, reply][-MEMORY_LIMIT:]

    def dump(self) -> dict[str, Any]:
        return {"cycles": dict(self.cycles), "memory": list(self.memory), "turns": self.turns}


def compile_pattern(
    pattern: str, synonyms: dict[str, tuple[str, ...]]
) -> tuple[re.Pattern[str], frozenset[str], int, int]:
    """Turn "* i @belief *" into a regex over " word word ... " text (padded with spaces).

    Returns (regex, literal words, specificity, number of captured groups).
    """
    parts: list[str] = []
    literals: set[str] = set()
    groups = 0
    tokens = pattern.split()
    for token in tokens:
        if token == "*":
            parts.append("(.*?)")
            groups += 1
        elif token.startswith("@"):
            if token[1:] not in synonyms:
                raise AgentFailure(f"invalid eliza script: unknown synonym group {token!r}")
            parts.append(" (" + "|".join(map(re.escape, synonyms[token[1:]])) + ")(?= )")
            groups += 1
        else:
            parts.append(" " + re.escape(token) + "(?= )")
            literals.add(token)
    if tokens and tokens[-1] != "*":
        parts.append(" ")  # consume the padding after a trailing literal so fullmatch succeeds
    return re.compile("".join(parts)), frozenset(literals), sum(t != "*" for t in tokens), groups


class ElizaAgent:
    def __init__(self, script: dict[str, Any]) -> None:
        try:
            synonyms = {group: tuple(words) for group, words in script.get("synonyms", {}).items()}
            self._pre = {word: tuple(value.split()) for word, value in script.get("pre", {}).items()}
            self._post: dict[str, str] = dict(script.get("post", {}))
            self._initial = tuple(script["initial"])
            self._final = tuple(script["final"])
            self._empty = tuple(script["empty"])
            self._fallback = tuple(script["fallback"])
            self._quit = frozenset(script.get("quit", ()))
            self._keywords = {entry["word"]: self._compile_keyword(entry, synonyms) for entry in script["keywords"]}
        except (KeyError, TypeError, AttributeError) as error:
            raise AgentFailure(f"invalid eliza script: {error!r}") from error
        if not (self._initial and self._final and self._empty and self._fallback):
            raise AgentFailure("invalid eliza script: initial, final, empty and fallback must be non-empty")
        for keyword in self._keywords.values():
            for decomposition in keyword.decompositions:
                if decomposition.goto is not None and decomposition.goto not in self._keywords:
                    raise AgentFailure(f"invalid eliza script: goto to unknown keyword {decomposition.goto!r}")

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> ElizaAgent:
        return agent_for_script(str(settings.get("script", "doctor")))

    @staticmethod
    def _compile_keyword(entry: dict[str, Any], synonyms: dict[str, tuple[str, ...]]) -> Keyword:
        decompositions = []
        for rule in entry["rules"]:
            regex, literals, specificity, groups = compile_pattern(rule["decomposition"], synonyms)
            reassemblies, memories = tuple(rule.get("reassembly", ())), tuple(rule.get("memory", ()))
            if bool(reassemblies) == ("goto" in rule):
                raise AgentFailure(f"invalid eliza script: {rule['decomposition']!r} needs reassemblies or a goto")
            for template in reassemblies + memories:
                if any(int(ref) > groups or int(ref) < 1 for ref, _ in REFERENCE.findall(template)):
                    raise AgentFailure(f"invalid eliza script: {template!r} refers to a missing fragment")
            decompositions.append(Decomposition(
                rule["decomposition"], regex, literals, specificity, reassemblies, memories, rule.get("goto")))
        return Keyword(entry["word"], int(entry["rank"]), bool(entry.get("greeting")), tuple(decompositions))

    async def run(self, context: AgentContext) -> AsyncIterator[AgentOutput]:
        reply = await asyncio.to_thread(self.reply, context)  # pattern matching is CPU: off the event loop
        async for chunk in paced(WORD_CHUNK.findall(reply.text), chunk_delay_seconds(context.settings)):
            yield chunk
        yield reply

    def reply(self, context: AgentContext) -> AgentReply:
        """The whole reply to the context's message (deterministic for a given message and agent state)."""
        state = ConversationState(context.agent_state)
        state.turns += 1
        choice = self._respond(context.message, state, has_history=bool(context.history))
        text, thought = choice.text, choice.thought
        name = preferred_name(context.preferences)
        if name and (choice.greeting or state.turns % NAME_EVERY_N_TURNS == 0) and name.lower() not in text.lower():
            text = address_by_name(name, text)
            thought += ", addressing the user by name"
        return AgentReply(text=text, thought=thought + ".", actions=choice.actions,
                          confidence=choice.confidence, agent_state=state.dump())

    def _respond(self, message: str, state: ConversationState, has_history: bool) -> Choice:
        clauses = self._clauses(message)
        if not clauses:
            pool, label = (self._empty, "empty") if has_history else (self._initial, "initial")
            index, text = state.next_of(f"_{label}", pool)
            thought = f"empty message, {label} reply {index + 1} of {len(pool)}"
            return Choice(text, thought, 0.3, greeting=not has_history)
        if all(word in self._quit for clause in clauses for word in clause):
            index, text = state.next_of("_final", self._final)
            return Choice(text, f"quit word, farewell {index + 1} of {len(self._final)}", 0.9,
                          actions=("REPLY", "FAREWELL"))
        clause, found = self._first_clause_with_keywords(clauses)
        padded = " " + " ".join(clause) + " "
        words = frozenset(clause)
        for keyword in sorted(found, key=lambda k: -k.rank):  # stable sort: ties keep order of appearance
            choice = self._apply(keyword, keyword, padded, words, state, depth=0)
            if choice is not None:
                return choice
        if state.memory:
            text = state.memory.pop(0)
            return Choice(text, "no keyword rule matched, so a remembered earlier topic was recalled", 0.4)
        index, text = state.next_of("_fallback", self._fallback)
        return Choice(text, f"no keyword rule matched, fallback reply {index + 1} of {len(self._fallback)}", 0.2)

    def _clauses(self, message: str) -> list[list[str]]:
        """Lower-case, apply pre-substitutions, and split into clauses at punctuation (and every 50 words)."""
        clauses: list[list[str]] = []
        current: list[str] = []
        for token in TOKEN.findall(message.lower().replace("\u2019", "'")):
            if token in CLAUSE_BREAKS:
                if current:
                    clauses.append(current)
                current = []
            elif token := token.strip("'"):
                current.extend(self._pre.get(token, (token,)))
        if current:
            clauses.append(current)
        return [clause[start:start + MAX_CLAUSE_WORDS] for clause in clauses
                for start in range(0, len(clause), MAX_CLAUSE_WORDS)]

    def _first_clause_with_keywords(self, clauses: list[list[str]]) -> tuple[list[str], list[Keyword]]:
        """The first clause holding a keyword; a clause that is only a greeting ("Hi, my name is ...")
        counts only when no later clause has a real topic."""
        greeting: tuple[list[str], list[Keyword]] | None = None
        for clause in clauses:
            found = [self._keywords[word] for word in dict.fromkeys(clause) if word in self._keywords]
            if found and not all(keyword.greeting for keyword in found):
                return clause, found
            greeting = greeting or ((clause, found) if found else None)
        return greeting or ([], [])

    def _apply(self, keyword: Keyword, rules: Keyword, padded: str, words: frozenset[str],
               state: ConversationState, depth: int) -> Choice | None:
        """Try `rules`' decompositions (reached from `keyword`, possibly through gotos) on the clause."""
        for decomposition in rules.decompositions:
            if not decomposition.literal_words <= words:
                continue
            match = decomposition.regex.fullmatch(padded)
            if match is None:
                continue
            if decomposition.goto is not None:
                if depth < MAX_GOTO_DEPTH:
                    choice = self._apply(keyword, self._keywords[decomposition.goto], padded, words, state, depth + 1)
                    if choice is not None:
                        return choice
                continue
            fragments = [group.strip() for group in match.groups()]
            cycle_key = f"{rules.word}|{decomposition.pattern}"
            options = len(decomposition.reassemblies)
            index = state.peek(cycle_key, options)
            text = self._reassemble(decomposition.reassemblies[index], fragments)
            if text is None:
                continue  # the chosen template needs a fragment the user left empty; let a later rule answer
            state.advance(cycle_key, options)
            remembered = ""
            if decomposition.memories:
                memory_key = cycle_key + "|memory"
                memory_options = len(decomposition.memories)
                memory_index = state.peek(memory_key, memory_options)
                memory = self._reassemble(decomposition.memories[memory_index], fragments)
                if memory is not None:
                    state.advance(memory_key, memory_options)
                    state.remember(memory)
                    remembered = ", and remembered the topic for later"
            redirect = f' redirected to "{rules.word}"' if rules is not keyword else ""
            thought = (f'keyword "{keyword.word}" (rank {keyword.rank}){redirect}, decomposition '
                       f'"{decomposition.pattern}", reassembly {index + 1} of {options}{remembered}')
            return Choice(text, thought, rule_confidence(keyword.rank, decomposition.specificity), keyword.greeting)
        return None

    def _reassemble(self, template: str, fragments: list[str]) -> str | None:
        """Fill (n) / (n:name) references; None when a referenced fragment is empty."""
        missing = False

        def fill(reference: re.Match[str]) -> str:
            nonlocal missing
            fragment = fragments[int(reference.group(1)) - 1]
            missing = missing or not fragment
            if reference.group(2):
                return fragment.split()[0].capitalize() if fragment else ""
            return self._reflect(fragment)

        text = REFERENCE.sub(fill, template)
        return None if missing else text[0].upper() + text[1:]

    def _reflect(self, fragment: str) -> str:
        """Swap first and second person ("my job" -> "your job"), two-word phrases first."""
        words = fragment.split()[:MAX_FRAGMENT_WORDS]
        reflected: list[str] = []
        position = 0
        while position < len(words):
            pair = " ".join(words[position:position + 2])
            if position + 1 < len(words) and pair in self._post:
                reflected.append(self._post[pair])
                position += 2
            else:
                reflected.append(self._post.get(words[position], words[position]))
                position += 1
        return " ".join(reflected)


def rule_confidence(rank: int, specificity: int) -> float:
    """High-rank keywords with specific patterns are the most targeted replies ELIZA can give."""
    return round(min(0.95, 0.5 + 0.025 * min(max(rank, 0), 10) + 0.07 * min(specificity, 3)), 3)


def address_by_name(name: str, text: str) -> str:
    opening = text if re.match(r"I\b", text) else text[0].lower() + text[1:]  # keep the pronoun "I" upper-case
    return f"{name}, {opening}"


def preferred_name(preferences: dict[str, Any]) -> str:
    """How the user asked to be addressed ("call me Al"), else the name they gave."""
    for key in ("addressAs", "name"):
        name = preferences.get(key)
        if isinstance(name, str) and name.strip():
            return name.strip()[:MAX_NAME_LENGTH]
    return ""




@lru_cache(maxsize=16)
def agent_for_script(name: str) -> ElizaAgent:
    """Load and compile a bundled script once per process; agents are stateless so one can be shared."""
    if not SCRIPT_NAME.fullmatch(name):
        raise AgentFailure(f"unknown eliza script {name!r}")
    resource = resources.files("core.agents") / "scripts" / f"{name}.json"
    if not resource.is_file():
        raise AgentFailure(f"unknown eliza script {name!r}")
    try:
        script = json.loads(resource.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise AgentFailure(f"invalid eliza script {name!r}: {error}") from error
    return ElizaAgent(script)
