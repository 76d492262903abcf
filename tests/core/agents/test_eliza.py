import json
from importlib import resources
from typing import Any

import pytest

from core.agents.base import AgentContext, AgentFailure, AgentReply, HistoryItem
from core.agents.eliza import ElizaAgent
from tests.support.asyncio_bridge import outputs_of, record_sleeps

# A tiny script so engine tests do not depend on the wording of doctor.json.
TINY_SCRIPT: dict[str, Any] = {
    "initial": ["Welcome."],
    "final": ["Farewell."],
    "quit": ["bye"],
    "empty": ["Say something."],
    "fallback": ["Fallback one.", "Fallback two."],
    "pre": {"dont": "don't", "im": "i am"},
    "post": {"i": "you", "my": "your", "you": "me", "i am": "you are"},
    "synonyms": {"pet": ["dog", "cat"]},
    "keywords": [
        {"word": "hello", "rank": 0, "greeting": True, "rules": [{"decomposition": "*", "reassembly": ["Hello."]}]},
        {"word": "hi", "rank": 0, "greeting": True, "rules": [{"decomposition": "*", "goto": "hello"}]},
        {"word": "pet", "rank": 1, "rules": [{"decomposition": "*", "reassembly": ["Pets are nice."]}]},
        {"word": "my", "rank": 2, "rules": [
            {"decomposition": "* my @pet *", "reassembly": ["Tell me about your (2)."]},
            {"decomposition": "* my *", "reassembly": ["Your (2)?"], "memory": ["Earlier you said your (2)."]},
        ]},
        {"word": "mother", "rank": 10, "rules": [{"decomposition": "*", "reassembly": ["Mothers matter."]}]},
        {"word": "sorry", "rank": 0, "rules": [{"decomposition": "*", "reassembly": ["A.", "B.", "C."]}]},
        {"word": "i", "rank": 0, "rules": [
            {"decomposition": "* i am *", "reassembly": ["Why are you (2)?"]},
            {"decomposition": "* i don't *", "reassembly": ["Why don't you (2)?"]},
            {"decomposition": "*", "reassembly": ["Go on."]},
        ]},
    ],
}


def make_context(message: str, state: dict[str, Any] | None = None, name: str | None = None,
                 settings: dict[str, Any] | None = None, history: tuple[HistoryItem, ...] = ()) -> AgentContext:
    return AgentContext(session_id="s1", user_id="u1", message=message, history=history,
                        settings=settings or {}, preferences={"name": name} if name else {},
                        agent_state=state or {})


def run_agent(agent: ElizaAgent, context: AgentContext) -> tuple[list[str], AgentReply]:
    *chunks, reply = outputs_of(agent.run(context))
    assert all(isinstance(chunk, str) for chunk in chunks)
    assert isinstance(reply, AgentReply)
    return chunks, reply


def reply_to(message: str, agent: ElizaAgent | None = None, **context: Any) -> AgentReply:
    return run_agent(agent or ElizaAgent(TINY_SCRIPT), make_context(message, **context))[1]


def converse(agent: ElizaAgent, messages: list[str], name: str | None = None) -> list[AgentReply]:
    """Send messages in turn, carrying the agent state over like the worker does."""
    replies, state = [], {}
    for message in messages:
        reply = reply_to(message, agent, state=state, name=name)
        replies.append(reply)
        state = reply.agent_state
    return replies


def doctor() -> ElizaAgent:
    return ElizaAgent.from_settings({"script": "doctor"})


def test_higher_rank_keyword_wins():
    reply = reply_to("I am sorry about my mother")
    assert reply.text == "Mothers matter."
    assert 'keyword "mother" (rank 10)' in reply.thought


def test_doctor_prefers_mother_over_dream_and_my():
    reply = reply_to("I had a dream about my mother", doctor())
    assert 'keyword "mother"' in reply.thought


def test_first_clause_with_a_keyword_is_used():
    reply = reply_to("Nothing here. I am tired, my dog")
    assert reply.text == "Why are you tired?"


def test_a_lone_greeting_clause_does_not_hide_the_topic():
    assert reply_to("Hi, I am tired").text == "Why are you tired?"
    assert reply_to("Hi, nothing more").text == "Hello."


def test_fragments_are_reflected():
    reply = reply_to("I am afraid of your dog", doctor())
    assert "you are afraid of my dog" in reply.text


def test_doctor_reflects_my_into_your():
    reply = reply_to("I am sad about my job", doctor())
    assert "your job" in reply.text


def test_pre_substitutions_apply_before_matching():
    assert reply_to("I dont sleep").text == "Why don't you sleep?"
    assert reply_to("im lost").text == "Why are you lost?"


def test_reassemblies_cycle_across_turns():
    replies = converse(ElizaAgent(TINY_SCRIPT), ["sorry"] * 4)
    assert [reply.text for reply in replies] == ["A.", "B.", "C.", "A."]
    assert "reassembly 2 of 3" in replies[1].thought


def test_same_state_and_message_give_same_reply():
    state = converse(doctor(), ["I am tired", "sorry", "my car is broken"])[-1].agent_state
    first = reply_to("I feel lost", doctor(), state=state)
    second = reply_to("I feel lost", doctor(), state=state)
    assert first == second


def test_incoming_state_is_not_mutated():
    state = {"cycles": {"sorry|*": 1}, "memory": ["Earlier you said your x."], "turns": 4}
    snapshot = json.loads(json.dumps(state))
    reply_to("hmm", state=state)
    assert state == snapshot


def test_malformed_state_is_tolerated():
    reply = reply_to("sorry", state={"cycles": "oops", "memory": 3, "turns": -1})
    assert reply.text == "A."
    assert reply.agent_state["turns"] == 1


def test_memory_is_recalled_when_nothing_matches():
    replies = converse(ElizaAgent(TINY_SCRIPT), ["My car is broken.", "Whatever.", "Whatever."])
    assert replies[0].text == "Your car is broken?"
    assert replies[1].text == "Earlier you said your car is broken."
    assert replies[1].confidence == pytest.approx(0.4)
    assert replies[2].text == "Fallback one."


def test_goto_uses_the_target_keyword_rules():
    reply = reply_to("hi")
    assert reply.text == "Hello."
    assert 'keyword "hi" (rank 0) redirected to "hello"' in reply.thought


def test_doctor_goto_from_why_to_what():
    reply = reply_to("why?", doctor())
    assert 'redirected to "what"' in reply.thought


def test_fallback_when_no_keyword_cycles():
    replies = converse(ElizaAgent(TINY_SCRIPT), ["weather today", "weather today", "weather today"])
    assert [reply.text for reply in replies] == ["Fallback one.", "Fallback two.", "Fallback one."]
    assert "fallback reply 1 of 2" in replies[0].thought


def test_empty_fragment_falls_through_to_a_later_decomposition():
    assert reply_to("I am").text == "Go on."


def test_name_is_used_on_greetings():
    reply = reply_to("hello", name="Alice")
    assert reply.text == "Alice, hello."
    assert "addressing the user by name" in reply.thought


def test_name_is_used_every_third_reply():
    replies = converse(ElizaAgent(TINY_SCRIPT), ["sorry", "sorry", "sorry"], name="Alice")
    assert [reply.text for reply in replies] == ["A.", "B.", "Alice, c."]


def test_how_the_user_asked_to_be_addressed_wins_over_their_name():
    context = AgentContext(session_id="s1", user_id="u1", message="hello", history=(), settings={},
                           preferences={"name": "Alice", "addressAs": "Al"}, agent_state={})
    assert run_agent(ElizaAgent(TINY_SCRIPT), context)[1].text == "Al, hello."


def test_name_is_not_used_without_preference():
    assert reply_to("hello").text == "Hello."


def test_my_name_is_gets_acknowledged():
    reply = reply_to("Hi, my name is alice", doctor())
    assert "Alice" in reply.text
    assert 'keyword "name"' in reply.thought


def test_call_me_gets_acknowledged():
    assert "Bob" in reply_to("please call me bob", doctor()).text


def test_chunks_join_to_the_reply_text_exactly():
    chunks, reply = run_agent(doctor(), make_context("I think my boss hates me"))
    assert len(chunks) > 1
    assert "".join(chunks) == reply.text
    assert all(chunk.endswith(" ") for chunk in chunks[:-1])
    assert not chunks[-1].endswith(" ")


def test_chunk_delay_comes_from_settings(monkeypatch: pytest.MonkeyPatch):
    sleeps = record_sleeps(monkeypatch)
    chunks, _ = run_agent(doctor(), make_context("I am sad", settings={"chunkDelayMs": 20}))
    assert sleeps == [0.02] * (len(chunks) - 1)


def test_no_delay_by_default(monkeypatch: pytest.MonkeyPatch):
    sleeps = record_sleeps(monkeypatch)
    run_agent(doctor(), make_context("I am sad"))
    assert sleeps == []


def test_thought_names_the_rule():
    reply = reply_to("My dog barks")
    assert reply.thought == 'keyword "my" (rank 2), decomposition "* my @pet *", reassembly 1 of 1.'
    assert reply.actions == ("REPLY",)


def test_memory_push_is_mentioned_in_thought():
    assert "remembered the topic" in reply_to("my car").thought


def test_confidence_orders_specific_over_generic_over_fallback():
    specific = reply_to("I dreamt about my mother", doctor()).confidence
    generic = reply_to("sorry", doctor()).confidence
    fallback = reply_to("the weather", doctor()).confidence
    assert 0.8 <= specific <= 0.95
    assert 0.5 <= generic <= 0.7
    assert 0.15 <= fallback <= 0.25
    assert specific > generic > fallback


@pytest.mark.parametrize("message", ["", "   ", "?!.,", "\n\t"])
def test_empty_input_gets_a_reply(message: str):
    chunks, reply = run_agent(doctor(), make_context(message))
    assert reply.text
    assert "".join(chunks) == reply.text


def test_empty_input_greets_at_start_and_prompts_later():
    assert reply_to("").text == "Welcome."
    assert reply_to("", history=(HistoryItem("user", "hi"),)).text == "Say something."


def test_quit_word_says_farewell():
    reply = reply_to("Bye!")
    assert reply.text == "Farewell."
    assert "FAREWELL" in reply.actions


def test_longest_input_gets_a_reply_that_echoes_a_bounded_fragment():
    message = ("I think my mother says that everyone is like me and my dog " * 80)[:4000]

    chunks, reply = run_agent(doctor(), make_context(message))

    assert reply.text and "".join(chunks) == reply.text
    assert len(reply.text) < 400  # long clauses are cut, so the cost and the echo stay bounded


def test_unknown_script_raises_agent_failure():
    with pytest.raises(AgentFailure, match="unknown eliza script"):
        ElizaAgent.from_settings({"script": "no_such_script"})


def test_script_name_cannot_traverse_paths():
    with pytest.raises(AgentFailure, match="unknown eliza script"):
        ElizaAgent.from_settings({"script": "../base"})


def test_goto_to_missing_keyword_is_rejected():
    broken = {**TINY_SCRIPT, "keywords": [{"word": "x", "rank": 0, "rules": [{"decomposition": "*", "goto": "nope"}]}]}
    with pytest.raises(AgentFailure, match="invalid eliza script"):
        ElizaAgent(broken)


def test_scripts_are_loaded_once():
    assert ElizaAgent.from_settings({}) is ElizaAgent.from_settings({"script": "doctor"})


def test_doctor_script_is_big_enough():
    script = json.loads((resources.files("core.agents") / "scripts" / "doctor.json").read_text(encoding="utf-8"))
    keywords = script["keywords"]
    assert len(keywords) >= 25
    assert sum(len(keyword["rules"]) for keyword in keywords) >= 60
    for word in ("hello", "hi", "thanks", "bye", "help", "problem", "account", "work", "name"):
        assert word in {keyword["word"] for keyword in keywords}
