"""Sending a message at the edge: listen, store it, commit, enqueue; then answer by transport.

Every transport shares `_accept` (subscribe to the session before committing, so the reply cannot be
published before we can hear it) and the session feed (events in order, missed ones re-read):
- http: wait for the reply and answer 201 with it (202 if the wait limit passes);
- sse: stream the user message, the reply's chunks, the stored reply, the state update, then `done`;
- websocket: answer 202 at once; the reply goes to the socket.io room and to /events.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from litestar import Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.resources import Resources
from api.streaming import reply_error, reply_event, sse_response
from core import logs
from core.bus import parse_event_id
from core.clock import utcnow
from core.errors import AgentFailed, MessageSuperseded, ServiceUnavailable
from core.schemas import (
    AcceptedPublic,
    AgentResponse,
    MessageCreate,
    MessagePublic,
    ReplyPublic,
    ReplyResult,
    SendResult,
    SessionStatus,
)
from core.services.events import ExchangeFeed
from core.services.messages import Submission, find_outcome, submit_message
from core.services.sessions import public_json, session_status
from core.sessions.double_texting import SUPERSEDED_CODE
from core.sessions.status import MessageStatus
from core.sessions.uow import AsyncUnitOfWork
from core.validation import check_idempotency_key, request_fingerprint

TRANSPORT_BY_MODE = {"sync": "http", "stream": "sse", "websocket": "websocket", "async": "websocket"}
EVENT_STREAM = "text/event-stream"
AGENT_FAILED = "the agent could not answer"


def transport_of(data: MessageCreate, accept: str | None) -> str:
    if data.transport or data.mode:
        return data.transport or TRANSPORT_BY_MODE[data.mode or "sync"]
    return "sse" if EVENT_STREAM in (accept or "") else "http"


@dataclass(frozen=True)
class Replied:
    message: MessagePublic
    status: SessionStatus
    timings: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    reason: str
    code: str = "AGENT_FAILED"  # or SUPERSEDED (an `interrupt` session answered a newer message instead)

    @classmethod
    def of(cls, message: MessagePublic) -> Failed:
        return cls(message.error or "the agent could not answer", message.metadata.get("errorCode", "AGENT_FAILED"))


@dataclass(frozen=True)
class Accepted:
    submission: Submission
    feed: ExchangeFeed | None  # None for the websocket transport: nobody waits here
    started: float
    committed: float


async def send(uow: AsyncUnitOfWork, resources: Resources, session_id: uuid.UUID, data: MessageCreate,
               idempotency_key: str | None, debug: bool, accept: str | None,
               owner: str | None) -> Response[Any] | EventSourceResponse:
    transport = transport_of(data, accept)
    accepted = await _accept(uow, resources, session_id, data, idempotency_key, transport, owner=owner)
    if accepted.feed is None:
        timings = {"acceptMs": _ms(accepted.started, accepted.committed)}
        submission = accepted.submission
        if submission.reply is not None:  # a retry of an answered message: the first result, whatever the transport
            return _reply_response(submission, submission.reply, submission.session_status, debug, timings)
        return _accepted(submission, debug, timings)
    if transport == "sse":
        events = reply_events(accepted.submission, accepted.feed, resources.settings.reply_wait_seconds)
        return sse_response(events, resources.settings)
    try:
        return await _blocking_reply(uow, resources, accepted, debug)
    finally:
        accepted.feed.close()


async def _accept(uow: AsyncUnitOfWork, resources: Resources, session_id: uuid.UUID, data: MessageCreate,
                  idempotency_key: str | None, transport: str, owner: str | None) -> Accepted:
    started = time.perf_counter()
    key = check_idempotency_key(idempotency_key)
    fingerprint = request_fingerprint(data.model_dump(mode="json", exclude_none=True))
    if not resources.hub.connected:
        # Without Redis the message could be stored but neither queued nor its reply heard: refuse before
        # storing anything, so the client's retry (503 + Retry-After) is the only copy.
        raise ServiceUnavailable("the message queue (Redis) is unavailable; retry shortly", dependency="redis")
    # websocket: nobody waits here; http waits for the stored reply only; sse streams the text too.
    subscription = None if transport == "websocket" else resources.hub.listen(session_id, chunks=transport == "sse")
    try:
        submission = await submit_message(uow, resources.settings, session_id, data, key, fingerprint,
                                          owner=owner, limiter=resources.limiter)
        logs.bind(message_id=submission.user_message.id)
        await uow.commit()
    except BaseException:
        if subscription is not None:
            subscription.close()
        raise
    committed = time.perf_counter()
    if subscription is None:
        return Accepted(submission, None, started, committed)
    created = submission.created_event
    message_id = submission.user_message.id
    if submission.created and created is not None:  # a new message: its events are heard live from here
        feed = ExchangeFeed(resources.events, subscription, message_id, parse_event_id(created["id"])[0],
                            catch_up=False)
    else:  # a retry re-reads its exchange from the log, from its `message.created` on
        start = parse_event_id(created["id"])[0] - 1 if created is not None else 0
        feed = ExchangeFeed(resources.events, subscription, message_id, start, catch_up=True)
    return Accepted(submission, feed, started, committed)


def outcome_of(event: dict[str, Any], user_message_id: str) -> Replied | Failed | None:
    data = event["data"]
    if event["type"] == "message.completed" and data.get("replyTo") == user_message_id:
        return Replied(MessagePublic.model_validate(data["message"]),
                       SessionStatus.model_validate(data["sessionStatus"]), data.get("timings", {}))
    if event["type"] == "message.failed" and data.get("messageId") == user_message_id:
        error = data.get("error", {})
        return Failed(error.get("message") or AGENT_FAILED, error.get("code", "AGENT_FAILED"))
    return None


async def _blocking_reply(uow: AsyncUnitOfWork, resources: Resources, accepted: Accepted,
                          debug: bool) -> Response[Any]:
    submission, feed = accepted.submission, accepted.feed
    assert feed is not None
    timings: dict[str, Any] = {"acceptMs": _ms(accepted.started, accepted.committed)}
    outcome: Replied | Failed | None = None
    if submission.reply is not None:
        outcome = Replied(submission.reply, submission.session_status, {})
    elif submission.user_message.status == MessageStatus.FAILED:
        outcome = Failed.of(submission.user_message)
    else:
        deadline = accepted.started + resources.settings.reply_wait_seconds
        with resources.metrics.waiting():
            outcome = await _wait_for_outcome(feed, str(submission.user_message.id), deadline)
    if outcome is None:  # late: ask the database once before answering 202
        outcome = await _stored_outcome(uow, resources, submission.user_message.id)
    timings["waitMs"] = _ms(accepted.committed, time.perf_counter())
    if outcome is None:
        return _accepted(submission, debug, timings)
    if isinstance(outcome, Failed):
        details = {"messageId": str(submission.user_message.id), "sessionId": str(submission.user_message.session_id)}
        failure = MessageSuperseded if outcome.code == SUPERSEDED_CODE else AgentFailed
        raise failure(outcome.reason, **details)
    timings.update(outcome.timings)
    return _reply_response(submission, outcome.message, outcome.status, debug, timings)


async def _wait_for_outcome(feed: ExchangeFeed, user_message_id: str, deadline: float) -> Replied | Failed | None:
    while (remaining := deadline - time.perf_counter()) > 0:
        try:
            event = await feed.next(remaining)
        except TimeoutError:
            return None
        outcome = outcome_of(event, user_message_id)
        if outcome is not None:
            return outcome
    return None


async def reply_events(submission: Submission, feed: ExchangeFeed,
                       wait_seconds: float) -> AsyncIterator[ServerSentEvent]:
    """The SSE reply, in ElizaOS's event names so its readers work unchanged: `user_message` (the stored
    message), `chunk`s (`{messageId, chunk, index}`, index from 0), then `done` (`{text, thought, actions}`
    plus the stored reply, the session status and `lastEventId`) or `error` (`{error, code, message}`).

    Ends with REPLY_TIMEOUT after `wait_seconds` without progress; the reply still reaches /events.
    """
    wanted = str(submission.user_message.id)
    try:
        if submission.created_event is not None and submission.created:
            yield _user_message_event(submission.created_event)
        while True:
            try:
                event = await feed.next(wait_seconds)
            except TimeoutError:
                yield reply_error("REPLY_TIMEOUT", "no reply yet; it will still arrive on the session's /events stream",
                                  wanted)
                return
            kind, data = event["type"], event["data"]
            if kind == "message.created":  # a retry replays its exchange from the log
                yield _user_message_event(event)
            elif kind == "message.chunk":
                # Our chunks count from 1, ElizaOS's from 0; a retried generation starts over at 0 again.
                yield reply_event("chunk", {"messageId": data["messageId"], "replyTo": data.get("replyTo"),
                                            "chunk": data["delta"], "index": data["index"] - 1})
            elif kind == "message.failed":
                error = data.get("error") or {}
                yield reply_error(error.get("code", "AGENT_FAILED"), error.get("message", AGENT_FAILED), wanted,
                                  event["id"])
                return
            elif kind == "message.completed":
                yield _done_event(submission, event)
                return
    finally:
        feed.close()


def _user_message_event(created: dict[str, Any]) -> ServerSentEvent:
    return reply_event("user_message", created["data"]["message"], created["id"])


def _done_event(submission: Submission, completed: dict[str, Any]) -> ServerSentEvent:
    data = completed["data"]
    reply = MessagePublic.model_validate(data["message"])
    status = _as_sent(submission, SessionStatus.model_validate(data["sessionStatus"]))
    return reply_event("done", {
        **public_json(agent_response_of(reply)), "messageId": str(reply.id), "replyTo": data.get("replyTo"),
        "message": data["message"], "sessionStatus": public_json(status), "lastEventId": completed["id"],
    }, completed["id"])


def agent_response_of(reply: MessagePublic) -> AgentResponse:
    """ElizaOS's `agentResponse` (and the fields of its SSE `done`): the reply's text and the agent's notes."""
    return AgentResponse(text=reply.content, thought=reply.metadata.get("thought") or "",
                         actions=reply.metadata.get("actions") or [])


async def _stored_outcome(uow: AsyncUnitOfWork, resources: Resources,
                          user_message_id: uuid.UUID) -> Replied | Failed | None:
    found = await find_outcome(uow, user_message_id)
    await uow.commit()
    if found is None:
        return None
    message, session = found
    if message.status == MessageStatus.FAILED:
        return Failed.of(message)
    return Replied(message, session_status(session, utcnow(), resources.settings.timeout_minute), {})


def _reply_response(submission: Submission, reply: MessagePublic, status: SessionStatus, debug: bool,
                    timings: dict[str, Any]) -> Response[ReplyPublic]:
    status = _as_sent(submission, status)
    # The user message was answered by the time this response is built.
    user_message = submission.user_message.model_copy(update={"status": MessageStatus.COMPLETED})
    agent_response = agent_response_of(reply)
    body = ReplyPublic(**reply.model_dump(), user_message=user_message, agent_response=agent_response,
                       session_status=status, debug=_debug(submission, timings) if debug else None,
                       data=ReplyResult(user_message=user_message, agent_response=agent_response,
                                        session_status=status))
    return Response(body, status_code=201)


def _as_sent(submission: Submission, status: SessionStatus) -> SessionStatus:
    """What the message did to the expiry is known to the request that stored it, not to the worker."""
    sent = submission.session_status
    return status.model_copy(update={"was_renewed": sent.was_renewed, "renewal_blocked": sent.renewal_blocked,
                                     "warning": sent.warning})


def _accepted(submission: Submission, debug: bool, timings: dict[str, Any]) -> Response[AcceptedPublic]:
    user_message, status = submission.user_message, submission.session_status
    base = f"/api/messaging/sessions/{user_message.session_id}"
    body = AcceptedPublic(user_message=user_message, session_status=status, events_url=f"{base}/events",
                          messages_url=f"{base}/messages?after=seq:{user_message.seq}",
                          data=SendResult(user_message=user_message, session_status=status),
                          debug=_debug(submission, timings) if debug else None)
    return Response(body, status_code=202)


def _debug(submission: Submission, timings: dict[str, Any]) -> dict[str, Any]:
    return {"sessionId": str(submission.user_message.session_id), "messageId": str(submission.user_message.id),
            "idempotentReplay": not submission.created, "timings": timings}


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
