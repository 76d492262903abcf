"""Sending a message at the edge: store it, commit, enqueue, then wait for the reply on the event bus."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from litestar import Response

from api.errors import error_response
from api.resources import Resources
from core import logs
from core.bus import Subscription
from core.clock import utcnow
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


async def send(uow: AsyncUnitOfWork, resources: Resources, session_id: uuid.UUID, data: MessageCreate,
               idempotency_key: str | None, debug: bool) -> Response[Any]:
    started = time.perf_counter()
    key = check_idempotency_key(idempotency_key)
    fingerprint = request_fingerprint(data.model_dump(mode="json", exclude_none=True))
    # Listen before committing: the reply cannot be published before we are ready to hear it.
    async with resources.hub.subscribe(session_id) as subscription:
        submission = await submit_message(uow, resources.settings, session_id, data, utcnow(), key, fingerprint)
        logs.bind(message_id=submission.user_message.id)
        await uow.commit()
        committed = time.perf_counter()
        timings: dict[str, Any] = {"acceptMs": _ms(started, committed)}
        outcome: Replied | Failed | None = None
        if submission.reply is not None:
            outcome = Replied(submission.reply, submission.session_status, {})
        elif submission.user_message.status == "failed":
            outcome = Failed(submission.user_message.error or "the agent could not answer")
        elif transport_of(data) == "websocket":
            return _accepted(submission, debug, timings)
        else:
            deadline = started + resources.settings.reply_wait_seconds
            with resources.metrics.waiting():
                outcome = await _wait_for_outcome(subscription, submission.user_message.id, deadline)
    if outcome is None:  # events lost or late: ask the database once
        outcome = await _stored_outcome(uow, submission.user_message.id)
    timings["waitMs"] = _ms(committed, time.perf_counter())
    if outcome is None:
        return _accepted(submission, debug, timings)
    if isinstance(outcome, Failed):
        return error_response(502, "AGENT_FAILED", outcome.reason,
                              {"messageId": str(submission.user_message.id), "sessionId": str(session_id)})
    timings.update(outcome.timings)
    return _reply_response(submission, outcome.message, outcome.status, debug, timings)


async def _wait_for_outcome(subscription: Subscription, user_message_id: uuid.UUID,
                            deadline: float) -> Replied | Failed | None:
    wanted = str(user_message_id)
    while (remaining := deadline - time.perf_counter()) > 0:
        event = await subscription.next(remaining)
        if event is None:
            return None
        data = event["data"]
        if event["type"] == "message.completed" and data.get("replyTo") == wanted:
            return Replied(MessagePublic.model_validate(data["message"]),
                           SessionStatus.model_validate(data["sessionStatus"]), data.get("timings", {}))
        if event["type"] == "message.failed" and data.get("messageId") == wanted:
            return Failed(data.get("error", {}).get("message") or "the agent could not answer")
    return None


async def _stored_outcome(uow: AsyncUnitOfWork, user_message_id: uuid.UUID) -> Replied | Failed | None:
    found = await find_outcome(uow, user_message_id)
    await uow.commit()
    if found is None:
        return None
    message, session = found
    if message.status == "failed":
        return Failed(message.error or "the agent could not answer")
    return Replied(message, session_status(session, utcnow(), False), {})


def _reply_response(submission: Submission, reply: MessagePublic, status: SessionStatus, debug: bool,
                    timings: dict[str, Any]) -> Response[ReplyPublic]:
    status = status.model_copy(update={"was_renewed": submission.session_status.was_renewed})
    body = ReplyPublic(**reply.model_dump(), user_message=submission.user_message, session_status=status,
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
