"""The chat prompt of a language-model agent, as pure functions of the character and the conversation.

The prompt is: one system message (the character, what was learned about the user, the state of the
conversation), then as many of the most recent earlier messages as fit the token budget, then the user
message being answered. Older messages are dropped whole, never cut, and the system message says how
many were left out.

Token counts are estimates: one token per 4 bytes of UTF-8 (OpenAI's rule of thumb of ~4 characters per
English token; counting bytes makes accented and non-Latin text, which takes more tokens per character,
count for more) plus 4 tokens of framing per message. No tokenizer that works offline for every model
exists (tiktoken downloads its tables on first use, and open models each have their own), so set
`contextTokens` somewhat below the model's real window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.agents.base import AgentContext, AgentFailure
from core.agents.character import AgentSettings, ModelSettings
from core.sessions.status import Role

BYTES_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
MAX_TOPICS_IN_PROMPT = 5
# Our roles as the OpenAI chat protocol names them.
OPENAI_ROLES: dict[str, str] = {Role.USER: "user", Role.AGENT: "assistant", Role.SYSTEM: "system"}
STRUCTURED_REPLY_INSTRUCTION = (
    "Answer with a single JSON object and nothing else, of the form "
    '{"text": "<your reply to the user>", "thought": "<one sentence on why you answer so>", '
    '"actions": ["REPLY"], "confidence": <a number from 0 to 1: how sure you are of the reply>}.'
)


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, str]]
    estimated_tokens: int
    history_used: int
    history_dropped: int


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def message_tokens(content: str) -> int:
    return estimate_tokens(content) + MESSAGE_OVERHEAD_TOKENS


def _render_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


def describe_preferences(preferences: Mapping[str, Any]) -> str:
    parts = [f"{key}: {_render_value(value)}" for key, value in preferences.items() if value not in (None, "", [], {})]
    return "; ".join(parts)


def describe_conversation(conversation: Mapping[str, Any]) -> str:
    parts = []
    if conversation.get("stage"):
        parts.append(f"stage: {conversation['stage']}")
    if conversation.get("intent"):
        parts.append(f"the user's intent: {conversation['intent']}")
    named = [t.get("topic") if isinstance(t, dict) else t for t in conversation.get("topics") or ()]
    if topics := [str(t) for t in named if t][:MAX_TOPICS_IN_PROMPT]:
        parts.append(f"topics: {', '.join(topics)}")
    sentiment = conversation.get("sentiment")
    if isinstance(sentiment, dict) and sentiment.get("label"):
        parts.append(f"the user's mood: {sentiment['label']}")
    return "; ".join(parts)


def system_prompt(settings: AgentSettings, agent_name: str, preferences: Mapping[str, Any],
                  conversation: Mapping[str, Any], dropped: int = 0) -> str:
    name = agent_name or "the assistant"
    sections = [f"You are {name}."]
    if settings.system:
        sections.append(settings.system.strip())
    if settings.bio:
        sections.append("About you:\n" + "\n".join(f"- {line}" for line in settings.bio))
    if settings.style:
        sections.append("Your style:\n" + "\n".join(f"- {line}" for line in settings.style))
    if settings.examples:
        exchanges = ["\n".join(f"{'User' if m.role == Role.USER else name}: {m.content}" for m in example)
                     for example in settings.examples]
        sections.append("Example exchanges:\n" + "\n\n".join(exchanges))
    if known := describe_preferences(preferences):
        sections.append(f"What the user told you about themselves in this conversation: {known}.")
    if state := describe_conversation(conversation):
        sections.append(f"The conversation so far: {state}.")
    if dropped:
        sections.append(f"({dropped} earlier messages of this conversation are not shown here.)")
    if settings.model and settings.model.structured_replies:
        sections.append(STRUCTURED_REPLY_INSTRUCTION)
    return "\n\n".join(sections)


def build_prompt(context: AgentContext, settings: AgentSettings) -> Prompt:
    """The messages to send; raises a non-transient `AgentFailure` if even an empty history does not fit."""
    model = settings.model or ModelSettings(name="unset")
    budget = model.context_tokens - model.max_tokens  # the reply's tokens come out of the same window

    def fit(dropped_note: bool) -> tuple[str, list[dict[str, str]], int]:
        system = system_prompt(settings, context.agent_name, context.preferences, context.conversation,
                               dropped=len(context.history) if dropped_note else 0)
        used = message_tokens(system) + message_tokens(context.message)
        if used > budget:
            raise AgentFailure(
                f"the prompt needs about {used} tokens before any history, more than the budget of {budget} "
                f"(contextTokens {model.context_tokens} minus maxTokens {model.max_tokens}); the context is too long",
                code="AGENT_CONTEXT_TOO_LONG")
        kept: list[dict[str, str]] = []
        for item in reversed(context.history):  # newest first, stopping at the first that does not fit
            cost = message_tokens(item.content)
            if used + cost > budget:
                break
            used += cost
            kept.append({"role": OPENAI_ROLES.get(item.role, OPENAI_ROLES[Role.USER]), "content": item.content})
        kept.reverse()
        return system, kept, used

    system, kept, used = fit(dropped_note=False)
    if len(kept) < len(context.history):  # say that some were left out; the note itself costs a few tokens
        system, kept, used = fit(dropped_note=True)
        system = system_prompt(settings, context.agent_name, context.preferences, context.conversation,
                               dropped=len(context.history) - len(kept))
    messages = [{"role": OPENAI_ROLES[Role.SYSTEM], "content": system}, *kept,
                {"role": OPENAI_ROLES[Role.USER], "content": context.message}]
    return Prompt(messages=messages, estimated_tokens=used, history_used=len(kept),
                  history_dropped=len(context.history) - len(kept))
