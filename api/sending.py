"""Sending a message at the edge: store it, commit, enqueue, then wait for the reply on the event bus."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Response

from api.errors import error_response
from api.resources import Resources
from core.bus import Subscription
from core.clock import utcnow
from core.errors import ServiceUnavailable
from core.schemas import AcceptedPublic, MessageCreate, MessagePublic, ReplyPublic, SessionStatus
from core.services.messages import Submission, find_outcome, submit_message
from core.services.sessions import session_status
from core.uow import AsyncUnitOfWork
from core.validation import check_idempotency_key, request_fingerprint

TRANSPORT_BY_MODE = {"sync": "http", "stream": "sse", "async": "websocket"}


def transport_of(data: MessageCreate) -> str:
    return data.transport or TRANSPORT_BY_MODE.get(data.mode or "", "http")


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


async def send(uow: AsyncUnitOfWork, resources: Resources, session_id: uuid.UUID, data: MessageCreate,
               idempotency_key: str | None, debug: bool) -> Response[Any]:
    started = time.perf_counter()
    key = check_idempotency_key(idempotency_key)
    fingerprint = request_fingerprint(data.model_dump(mode="json", exclude_none=True))
    if not resources.hub.connected:
        # Without Redis the message could be stored but neither queued nor its reply heard: refuse before
        # storing anything, so the client's retry (503 + Retry-After) is the only copy.
        raise ServiceUnavailable("the message queue (Redis) is unavailable; retry shortly", dependency="redis")
    # Listen before committing: the reply cannot be published before we are ready to hear it.
    async with resources.hub.subscribe(session_id) as subscription:
        submission = await submit_message(uow, resources.settings, session_id, data, utcnow(), key, fingerprint)
        await uow.commit()
        committed = time.perf_counter()
        timings: dict[str, Any] = {"acceptMs": _ms(started, committed)}
        outcome: Replied | Failed | None = None
        if submission.reply is not None:
            outcome = Replied(submission.reply, submission.session_status, {})
        elif submission.user_message.status == "failed":
            outcome = Failed.of(submission.user_message)
        elif transport_of(data) == "websocket":
            return _accepted(submission, debug, timings)
        else:
            deadline = started + resources.settings.reply_wait_seconds
            outcome = await _wait_for_outcome(uow, subscription, submission.user_message.id, deadline)
    if outcome is None:  # the wait ran out (or events were lost): ask the database once more
        outcome = await _stored_outcome(uow, submission.user_message.id)
    timings["waitMs"] = _ms(committed, time.perf_counter())
    if outcome is None:
        return _accepted(submission, debug, timings)
    if isinstance(outcome, Failed):
        details = {"messageId": str(submission.user_message.id), "sessionId": str(session_id)}
        if outcome.code == "SUPERSEDED":
            return error_response(409, "MESSAGE_SUPERSEDED", outcome.reason, details)
        return error_response(502, "AGENT_FAILED", outcome.reason, details)
    timings.update(outcome.timings)
    return _reply_response(submission, outcome.message, outcome.status, debug, timings)


async def _wait_for_outcome(uow: AsyncUnitOfWork, subscription: Subscription, user_message_id: uuid.UUID,
                            deadline: float) -> Replied | Failed | None:
    wanted = str(user_message_id)
    while (remaining := deadline - time.perf_counter()) > 0:
        event = await subscription.next(remaining)
        if event is None:
            if time.perf_counter() >= deadline:
                return None
            # The hub lost (or regained) Redis: the reply may have been published while nobody listened.
            stored = await _stored_outcome(uow, user_message_id)
            if stored is not None:
                return stored
            continue
        data = event["data"]
        if event["type"] == "message.completed" and (data.get("replyTo") == wanted
                                                     or wanted in data.get("coalesced", ())):
            return Replied(MessagePublic.model_validate(data["message"]),
                           SessionStatus.model_validate(data["sessionStatus"]), data.get("timings", {}))
        if event["type"] == "message.failed" and data.get("messageId") == wanted:
            error = data.get("error", {})
            return Failed(error.get("message") or "the agent could not answer", error.get("code", "AGENT_FAILED"))
    return None


async def _stored_outcome(uow: AsyncUnitOfWork, user_message_id: uuid.UUID) -> Replied | Failed | None:
    found = await find_outcome(uow, user_message_id)
    await uow.commit()
    if found is None:
        return None
    message, session = found
    if message.status == "failed":
        return Failed.of(message)
    return Replied(message, session_status(session, utcnow(), False), {})


def _reply_response(submission: Submission, reply: MessagePublic, status: SessionStatus, debug: bool,
                    timings: dict[str, Any]) -> Response[ReplyPublic]:
    status = status.model_copy(update={"was_renewed": submission.session_status.was_renewed})
    # The user message was answered by the time this response is built.
    user_message = submission.user_message.model_copy(update={"status": "completed"})
    body = ReplyPublic(**reply.model_dump(), user_message=user_message, session_status=status,
                       debug=_debug(submission, timings) if debug else None)
    return Response(body, status_code=201)


def _accepted(submission: Submission, debug: bool, timings: dict[str, Any]) -> Response[AcceptedPublic]:
    session_id = submission.user_message.session_id
    base = f"/api/messaging/sessions/{session_id}"
    body = AcceptedPublic(user_message=submission.user_message, session_status=submission.session_status,
                          events_url=f"{base}/events", messages_url=f"{base}/messages?after=seq:{submission.user_message.seq}",
                          debug=_debug(submission, timings) if debug else None)
    return Response(body, status_code=202)


def _debug(submission: Submission, timings: dict[str, Any]) -> dict[str, Any]:
    return {"sessionId": str(submission.user_message.session_id), "messageId": str(submission.user_message.id),
            "idempotentReplay": not submission.created, "timings": timings}


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
