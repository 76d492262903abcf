from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select

from core import timeouts
from core.bus import Event
from core.clock import epoch_millis, moment_of, utcnow
from core.errors import IdempotencyKeyReused, InvalidPagination, SessionBusy
from core.models import events_table, messages_table
from core.positions import CursorPosition, Position, SeqPosition, TimePosition, cursor_value, parse_position
from core.ratelimit import RateLimiter
from core.schemas import Cursors, MessageCreate, MessagePage, MessagePublic, SessionStatus
from core.services.sessions import ensure_open, public_json, session_status
from core.sessions import statements as sql
from core.sessions.double_texting import DoubleTexting
from core.sessions.status import UNANSWERED_STATUSES, MessageStatus, Role
from core.sessions.uow import AsyncUnitOfWork
from core.settings import Settings
from core.validation import check_attachments, check_content, check_metadata

M = messages_table.c


# Kept in a message's stored metadata, answered in fields of their own: they are nested, and ElizaOS clients
# are promised flat metadata values.
OWN_FIELDS = ("attachments", "analysis")


def message_public(row: Any) -> MessagePublic:
    metadata = {key: value for key, value in row.metadata.items() if key not in OWN_FIELDS}
    return MessagePublic(
        id=row.id, session_id=row.session_id, seq=row.seq, role=row.role, is_agent=row.role == Role.AGENT,
        author_id=row.author_id, content=row.content, status=row.status, reply_to=row.reply_to,
        created_at=row.created_at, metadata=metadata, attachments=row.metadata.get("attachments"),
        analysis=row.metadata.get("analysis"), error=row.error,
    )


@dataclass(frozen=True)
class Submission:
    user_message: MessagePublic
    session_status: SessionStatus
    created: bool  # False when an Idempotency-Key retry found the first request's message
    created_event: dict[str, Any] | None  # the `message.created` envelope (None if a retry cannot find it)
    reply: MessagePublic | None = None  # the stored reply, when a retry comes after it exists


async def submit_message(uow: AsyncUnitOfWork, settings: Settings, session_id: uuid.UUID, data: MessageCreate,
                         idempotency_key: str | None, fingerprint: str, *, owner: str | None,
                         limiter: RateLimiter) -> Submission:
    """Store the user's message as `pending` and renew the session; the worker is asked after commit.

    The message's time is taken under the session's lock, so a session's messages are in the same order by
    time as by seq (history pages bounded by a time rely on it)."""
    content = check_content(data.content, settings)
    metadata = dict(check_metadata(data.metadata, settings))
    if data.attachments:
        metadata["attachments"] = check_attachments(data.attachments, settings)
    row = await uow.lock_session(session_id, owner=owner)
    now = utcnow()
    if idempotency_key is not None:
        retry = await _find_retry(uow, settings, row, idempotency_key, fingerprint, now)
        if retry is not None:
            return retry  # a retry returns the first result and costs no rate-limit quota
    ensure_open(row, now)
    if DoubleTexting(row.double_texting).refuses_when_busy:
        await _ensure_not_busy(uow, row.id)
    await limiter.message(row.id, row.user_id)
    config = timeouts.config_of(row)
    # Past the maximum duration the renewal is refused but the message still goes through; the
    # session status in the answer says so.
    renewal = timeouts.renew_on_activity(row.created_at, row.expires_at, now, config, settings.timeout_minute)
    message = {
        "id": uuid.uuid4(), "session_id": row.id, "seq": row.next_seq + 1, "role": Role.USER.value,
        "author_id": row.user_id, "content": content, "metadata": metadata, "status": MessageStatus.PENDING.value,
        "created_at": now, "attempts": 0, "idempotency_key": idempotency_key,
        "request_hash": fingerprint if idempotency_key else None,
    }
    await uow.execute(sql.INSERT_MESSAGE, message)
    renewed: dict[str, Any] = {}
    if renewal.renewed:
        renewed = {"renewal_count": row.renewal_count + 1,
                   **timeouts.expiry_values(renewal.expires_at, config, settings.timeout_minute)}
    public = message_public(SimpleNamespace(**message, reply_to=None, error=None))
    announced = {"message": public_json(public)}
    updated = await uow.update_session(
        row, {"next_seq": message["seq"], "message_count": row.message_count + 1, "last_activity_at": now,
              **renewed}, [("message.created", announced)], at=now)
    uow.process_session_after_commit(row.id)
    created = Event(session_id=row.id, seq=updated.event_seq, type="message.created", data=announced, created_at=now)
    return Submission(user_message=public, created=True, created_event=created.envelope(),
                      session_status=session_status(updated, now, settings.timeout_minute, renewal))


async def _ensure_not_busy(uow: AsyncUnitOfWork, session_id: uuid.UUID) -> None:
    # Checked under the session's row lock, so two racing sends cannot both pass.
    waiting = (await uow.execute(sql.OLDEST_UNANSWERED, {"session_id": session_id})).first()
    if waiting is not None:
        raise SessionBusy("the previous message is still being answered; send again after its reply",
                          sessionId=str(session_id), pendingMessageId=str(waiting.id))


async def _find_retry(uow: AsyncUnitOfWork, settings: Settings, session: Any, key: str, fingerprint: str,
                      now: datetime) -> Submission | None:
    first = (await uow.execute(select(messages_table).where(
        M.session_id == session.id, M.idempotency_key == key))).first()
    if first is None:
        return None
    if first.request_hash != fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body",
                                   messageId=str(first.id))
    reply = await _reply_to(uow, first.id)
    if reply is None and first.status in UNANSWERED_STATUSES:
        # The first request's task may have been lost (Redis restarted, the API died before sending it):
        # ask again. Processing is idempotent, so an extra task costs one lock check.
        uow.process_session_after_commit(session.id)
    return Submission(user_message=message_public(first),
                      session_status=session_status(session, now, settings.timeout_minute),
                      created=False, created_event=await _created_event(uow, first),
                      reply=message_public(reply) if reply is not None else None)


async def _created_event(uow: AsyncUnitOfWork, message: Any) -> dict[str, Any] | None:
    """The stored `message.created` event of a message: written with the message, at the same moment."""
    rows = (await uow.execute(select(events_table).where(
        events_table.c.session_id == message.session_id, events_table.c.type == "message.created",
        events_table.c.created_at == message.created_at))).all()
    for row in rows:
        if row.data.get("message", {}).get("id") == str(message.id):
            return Event(session_id=row.session_id, seq=row.seq, type=row.type, data=row.data,
                         created_at=row.created_at).envelope()
    return None


async def find_outcome(uow: AsyncUnitOfWork, user_message_id: uuid.UUID) -> tuple[MessagePublic, Any] | None:
    """The stored reply to a user message (or the failed user message itself), with its session row."""
    reply = await _reply_to(uow, user_message_id)
    if reply is None:
        reply = (await uow.execute(select(messages_table).where(
            M.id == user_message_id, M.status == MessageStatus.FAILED.value))).first()
    if reply is None:
        return None
    # Called by the edge right after submitting this very message, whose session it has already checked.
    return message_public(reply), await uow.load_session(reply.session_id)


async def _reply_to(uow: AsyncUnitOfWork, user_message_id: uuid.UUID) -> Any:
    """The reply answering a user message: its own, or, for a message coalesced into a later one's turn,
    that turn's reply."""
    reply = (await uow.execute(select(messages_table).where(M.reply_to == user_message_id))).first()
    if reply is not None:
        return reply
    user = (await uow.execute(select(M.metadata).where(M.id == user_message_id))).first()
    turn = (user.metadata or {}).get("coalescedInto") if user is not None else None
    if turn is None:
        return None
    return (await uow.execute(select(messages_table).where(M.reply_to == uuid.UUID(turn)))).first()


def parse_limit(raw: str | None, settings: Settings) -> int:
    if raw is None:
        return settings.page_size_default
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidPagination("limit must be a whole number", field="limit", value=raw[:32]) from None
    if not 1 <= limit <= settings.page_size_max:
        raise InvalidPagination(f"limit must be between 1 and {settings.page_size_max}", field="limit", value=limit)
    return limit


async def _bound(uow: AsyncUnitOfWork, session_id: uuid.UUID, position: Position, field: str) -> Any:
    """The condition selecting the messages before (`field` "before") or after a position."""
    older = field == "before"
    if isinstance(position, TimePosition):  # a whole millisecond
        return M.created_at < position.start if older else M.created_at >= position.end
    seq = position.seq if isinstance(position, SeqPosition) else \
        await _seq_of_cursor(uow, session_id, position, field)
    return M.seq < seq if older else M.seq > seq


def _same_millisecond(session_id: uuid.UUID, millis: int) -> list[Any]:
    return [M.session_id == session_id, M.created_at >= moment_of(millis), M.created_at < moment_of(millis + 1)]


async def _seq_of_cursor(uow: AsyncUnitOfWork, session_id: uuid.UUID, cursor: CursorPosition, field: str) -> int:
    seq: int | None = await uow.scalar(select(M.seq).where(*_same_millisecond(session_id, cursor.millis))
                           .order_by(M.seq).offset(cursor.rank - 1).limit(1))
    if seq is None:
        raise InvalidPagination(f"{field}: the cursor names no message of this session", field=field,
                                value=f"{cursor.millis}.{cursor.rank:03d}")
    return seq


async def _cursor_of(uow: AsyncUnitOfWork, row: Any) -> float | str:
    """The cursor naming a message: its millisecond, and its rank by seq among the messages stored in it."""
    millis = epoch_millis(row.created_at)
    earlier = await uow.scalar(select(func.count()).select_from(messages_table).where(
        *_same_millisecond(row.session_id, millis), M.seq < row.seq))
    return cursor_value(millis, earlier + 1, row.seq)


@dataclass(frozen=True)
class Page:
    rows: list[Any]  # newest first
    has_more: bool
    cursors: Cursors


async def page_of_messages(uow: AsyncUnitOfWork, settings: Settings, session_id: uuid.UUID, *filters: Any,
                           owner: str | None, limit: str | None, before: str | None, after: str | None) -> Page:
    """One page of a session's messages (those matching `filters`), ordered by seq; see core/positions.py."""
    size = parse_limit(limit, settings)
    positions = {field: parse_position(raw, field) for field, raw in (("before", before), ("after", after))
                 if raw is not None}
    await uow.load_session(session_id, owner=owner)
    bounds = [M.session_id == session_id, *filters]
    for field, position in positions.items():
        bounds.append(await _bound(uow, session_id, position, field))
    # With only `after`, the page is the messages right after it (paging forward); otherwise the newest.
    forward = list(positions) == ["after"]
    order = M.seq.asc() if forward else M.seq.desc()
    rows = (await uow.execute(select(messages_table).where(*bounds).order_by(order).limit(size + 1))).all()
    page = sorted(rows[:size], key=lambda row: row.seq, reverse=True)
    cursors = Cursors(before=await _cursor_of(uow, page[-1]), after=await _cursor_of(uow, page[0])) if page \
        else Cursors(before=None, after=None)
    return Page(rows=page, has_more=len(rows) > size, cursors=cursors)


async def history(uow: AsyncUnitOfWork, settings: Settings, session_id: uuid.UUID, *, owner: str | None,
                  limit: str | None, before: str | None, after: str | None) -> MessagePage:
    page = await page_of_messages(uow, settings, session_id, owner=owner, limit=limit, before=before, after=after)
    return MessagePage(messages=[message_public(row) for row in page.rows], has_more=page.has_more,
                       cursors=page.cursors)
