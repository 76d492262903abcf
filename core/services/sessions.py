from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, delete, func, insert, or_, select

from core import timeouts
from core.analysis import public_state
from core.errors import (
    Forbidden,
    IdempotencyKeyReused,
    InvalidPagination,
    MaxDurationReached,
    SessionEnded,
    SessionExpired,
    SessionNotPaused,
    SessionPaused,
)
from core.models import agents_table, sessions_table
from core.ratelimit import RateLimiter
from core.schemas import (
    ConversationState,
    EndedSession,
    EndedSessionPublic,
    SessionCreate,
    SessionPage,
    SessionPublic,
    SessionStats,
    SessionStatus,
    SessionWarning,
    TimeoutConfigUpdate,
)
from core.services.agents import get_agent_row
from core.sessions.status import LIVE_STATUSES, SessionStatusName
from core.sessions.uow import AsyncUnitOfWork
from core.settings import Settings
from core.validation import check_metadata, moment_from

S = sessions_table.c


def session_public(row: Any, now: datetime, minute: timedelta) -> SessionPublic:
    status = timeouts.effective_status(row.status, row.expires_at, now)
    live = status in LIVE_STATUSES
    return SessionPublic(
        session_id=row.id, channel_id=row.id, agent_id=row.agent_id, user_id=row.user_id, status=status,
        metadata=row.metadata, created_at=row.created_at, last_activity=row.last_activity_at,
        expires_at=row.expires_at, ended_at=row.ended_at, end_reason=row.end_reason,
        timeout_config=timeouts.config_of(row), renewal_count=row.renewal_count,
        time_remaining=timeouts.time_remaining_ms(row.expires_at, now) if live else 0,
        is_near_expiration=live and timeouts.is_near_expiration(row.expires_at, now, row.warning_threshold_minutes,
                                                                minute),
        message_count=row.message_count, state=ConversationState.model_validate(public_state(row.state or None)),
        double_texting=row.double_texting,
    )


def session_status(row: Any, now: datetime, minute: timedelta,
                   renewal: timeouts.Renewal | None = None) -> SessionStatus:
    """The session's status after an exchange; `renewal` says what the message did to its expiry."""
    public = session_public(row, now, minute)
    blocked = renewal is not None and renewal.blocked
    warning = SessionWarning(
        code=MaxDurationReached.code, message=(
            f"auto-renewal cannot extend this session past its maximum duration of {row.max_duration_minutes} "
            "minutes; it will expire at expiresAt whatever the activity")) if blocked else None
    return SessionStatus(status=public.status, expires_at=public.expires_at, time_remaining=public.time_remaining,
                         renewal_count=public.renewal_count, was_renewed=renewal is not None and renewal.renewed,
                         renewal_blocked=blocked, warning=warning,
                         is_near_expiration=public.is_near_expiration, state=public.state)


def ensure_open(row: Any, now: datetime, *, allow_paused: bool = False) -> None:
    """Raise the error that tells a client why this session takes no more activity."""
    status = timeouts.effective_status(row.status, row.expires_at, now)
    if status == SessionStatusName.EXPIRED:
        raise SessionExpired(f"session {row.id} expired", sessionId=str(row.id), expiredAt=str(row.expires_at))
    if status == SessionStatusName.ENDED:
        raise SessionEnded(f"session {row.id} has ended", sessionId=str(row.id), endReason=row.end_reason)
    if status == SessionStatusName.PAUSED and not allow_paused:
        raise SessionPaused(f"session {row.id} is paused; resume it first", sessionId=str(row.id))


async def create_session(uow: AsyncUnitOfWork, settings: Settings, data: SessionCreate, now: datetime,
                         idempotency_key: str | None, fingerprint: str, *, owner: str | None,
                         limiter: RateLimiter) -> SessionPublic:
    if owner is not None and data.user_id != owner:
        raise Forbidden("a user token may only create sessions for its own userId", userId=data.user_id)
    metadata = check_metadata(data.metadata, settings)
    if idempotency_key is not None:
        existing = (await uow.execute(select(sessions_table).where(
            S.user_id == data.user_id, S.idempotency_key == idempotency_key))).first()
        if existing is not None:
            if existing.request_hash != fingerprint:
                raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
            return session_public(existing, now, settings.timeout_minute)
    agent = await get_agent_row(uow, data.agent_id)
    await limiter.session_created(data.user_id)
    config = timeouts.resolve(settings, agent.settings, data.timeout_config)
    expires_at = timeouts.renewed_expiry(now, now, config, settings.timeout_minute)
    values = {
        "id": uuid.uuid4(), "agent_id": agent.id, "user_id": data.user_id, "status": SessionStatusName.ACTIVE.value,
        "metadata": metadata, **config.model_dump(), "created_at": now, "last_activity_at": now,
        **timeouts.expiry_values(expires_at, config, settings.timeout_minute), "renewal_count": 0,
        "message_count": 0, "state": {}, "agent_state": {}, "next_seq": 0, "event_seq": 0,
        "double_texting": data.double_texting,
        "idempotency_key": idempotency_key, "request_hash": fingerprint if idempotency_key else None,
    }
    await uow.execute(insert(sessions_table).values(values))
    return session_public(await uow.load_session(values["id"], owner=owner), now, settings.timeout_minute)


async def get_session(uow: AsyncUnitOfWork, settings: Settings, session_id: uuid.UUID,
                      now: datetime, *, owner: str | None) -> SessionPublic:
    return session_public(await uow.load_session(session_id, owner=owner), now, settings.timeout_minute)


def _encode_cursor(row: Any) -> str:
    return base64.urlsafe_b64encode(f"{row.created_at.isoformat()}|{row.id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        moment, _, ident = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return moment_from(moment), uuid.UUID(ident)
    except ValueError:
        raise InvalidPagination("cursor is not one this API returned", field="cursor") from None


async def list_sessions(uow: AsyncUnitOfWork, settings: Settings, now: datetime, *, owner: str | None,
                        user_id: str | None, agent_id: uuid.UUID | None, status: str | None, cursor: str | None,
                        limit: int) -> SessionPage:
    filters = [] if owner is None else [S.user_id == owner]
    if user_id is not None:
        filters.append(S.user_id == user_id)
    if agent_id is not None:
        filters.append(S.agent_id == agent_id)
    counts: dict[str, int] = dict((await uow.execute(
        select(S.status, func.count()).where(*filters).group_by(S.status))).tuples().all())
    if status is not None:
        filters.append(S.status == status)
    if cursor is not None:
        created_at, ident = _decode_cursor(cursor)
        filters.append(or_(S.created_at < created_at, and_(S.created_at == created_at, S.id < ident)))
    rows = (await uow.execute(select(sessions_table).where(*filters)
                                   .order_by(S.created_at.desc(), S.id.desc()).limit(limit + 1))).all()
    page = rows[:limit]
    total = counts.get(status, 0) if status is not None else sum(counts.values())
    return SessionPage(
        sessions=[session_public(row, now, settings.timeout_minute) for row in page], total=total,
        has_more=len(rows) > limit,
        next_cursor=_encode_cursor(page[-1]) if len(rows) > limit else None,
        stats=SessionStats(total=sum(counts.values()), by_status=counts),
    )


def public_json(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


async def _change(uow: AsyncUnitOfWork, settings: Settings, row: Any, now: datetime, kind: str | None,
                  **values: Any) -> SessionPublic:
    """Update the session and, when `kind` is given, record that lifecycle event with its new state."""
    def announced(updated: Any) -> list[tuple[str, dict[str, Any]]]:
        return [(kind, {"session": public_json(session_public(updated, now, settings.timeout_minute))})] if kind else []

    updated = await uow.update_session(row, values, announced, at=now, count=1 if kind else 0)
    return session_public(updated, now, settings.timeout_minute)


async def end_session(uow: AsyncUnitOfWork, settings: Settings, session_id: uuid.UUID, now: datetime,
                      purge: bool, *, owner: str | None) -> EndedSessionPublic:
    row = await uow.lock_session(session_id, owner=owner)
    if purge:
        await uow.execute(delete(sessions_table).where(S.id == row.id))
        return _ended(EndedSession(session_id=row.id, status="purged", purged=True))
    status = timeouts.effective_status(row.status, row.expires_at, now)
    if status in LIVE_STATUSES:
        await _change(uow, settings, row, now, "session.ended", status=SessionStatusName.ENDED.value, ended_at=now,
                      end_reason="ended_by_client", warn_at=None)
        status = SessionStatusName.ENDED
    return _ended(EndedSession(session_id=row.id, status=status, purged=False))


def _ended(ended: EndedSession) -> EndedSessionPublic:
    return EndedSessionPublic(**ended.model_dump(), data=ended)  # `data`: what ElizaOS's client returns


async def pause_session(uow: AsyncUnitOfWork, settings: Settings, session_id: uuid.UUID,
                        now: datetime, *, owner: str | None) -> SessionPublic:
    row = await uow.lock_session(session_id, owner=owner)
    ensure_open(row, now)
    # While paused only the maximum duration runs: the idle clock stops.
    config = timeouts.config_of(row)
    deadline = timeouts.hard_deadline(row.created_at, config, settings.timeout_minute)
    return await _change(uow, settings, row, now, "session.paused", status=SessionStatusName.PAUSED.value,
                         paused_at=now,
                         **timeouts.expiry_values(deadline, config, settings.timeout_minute))


async def resume_session(uow: AsyncUnitOfWork, settings: Settings, session_id: uuid.UUID,
                         now: datetime, *, owner: str | None) -> SessionPublic:
    row = await uow.lock_session(session_id, owner=owner)
    ensure_open(row, now, allow_paused=True)
    if row.status != SessionStatusName.PAUSED:
        raise SessionNotPaused(f"session {row.id} is not paused", sessionId=str(row.id))
    config = timeouts.config_of(row)
    expires_at = timeouts.renewed_expiry(row.created_at, now, config, settings.timeout_minute)
    return await _change(uow, settings, row, now, "session.resumed", status=SessionStatusName.ACTIVE.value,
                         paused_at=None,
                         last_activity_at=now, **timeouts.expiry_values(expires_at, config, settings.timeout_minute))


async def renew_session(uow: AsyncUnitOfWork, settings: Settings, session_id: uuid.UUID,
                        now: datetime, *, owner: str | None) -> SessionPublic:
    row = await uow.lock_session(session_id, owner=owner)
    ensure_open(row, now)
    config = timeouts.config_of(row)
    expires_at = timeouts.renewed_expiry(row.created_at, now, config, settings.timeout_minute)
    if expires_at <= row.expires_at:
        raise MaxDurationReached("the session reached its maximum duration and cannot be renewed further",
                                 sessionId=str(row.id), expiresAt=str(row.expires_at),
                                 maxDurationMinutes=row.max_duration_minutes)
    return await _change(uow, settings, row, now, "session.renewed", last_activity_at=now,
                         renewal_count=row.renewal_count + 1,
                         **timeouts.expiry_values(expires_at, config, settings.timeout_minute))


async def heartbeat(uow: AsyncUnitOfWork, settings: Settings, session_id: uuid.UUID, now: datetime,
                    *, owner: str | None) -> SessionPublic:
    """Activity without a message: renews when the session auto-renews, never fails at max duration."""
    row = await uow.lock_session(session_id, owner=owner)
    ensure_open(row, now)
    config = timeouts.config_of(row)
    renewal = timeouts.renew_on_activity(row.created_at, row.expires_at, now, config, settings.timeout_minute)
    if not renewal.renewed:
        return await _change(uow, settings, row, now, None, last_activity_at=now)
    return await _change(uow, settings, row, now, "session.renewed", last_activity_at=now,
                         renewal_count=row.renewal_count + 1,
                         **timeouts.expiry_values(renewal.expires_at, config, settings.timeout_minute))


async def update_timeout(uow: AsyncUnitOfWork, settings: Settings, session_id: uuid.UUID, now: datetime,
                         update_: TimeoutConfigUpdate, *, owner: str | None) -> SessionPublic:
    row = await uow.lock_session(session_id, owner=owner)
    ensure_open(row, now, allow_paused=True)
    config = timeouts.merge(timeouts.config_of(row), update_)  # merges with the session's current config
    if row.status == SessionStatusName.ACTIVE:
        expires_at = timeouts.renewed_expiry(row.created_at, now, config, settings.timeout_minute)
    else:
        expires_at = timeouts.hard_deadline(row.created_at, config, settings.timeout_minute)
    return await _change(uow, settings, row, now, None, **config.model_dump(),
                         **timeouts.expiry_values(expires_at, config, settings.timeout_minute))


@dataclass(frozen=True)
class Participants:
    """Who speaks in a session, as socket.io broadcasts name them."""

    session_id: uuid.UUID
    user_id: str
    agent_id: uuid.UUID
    agent_name: str


async def participants(uow: AsyncUnitOfWork, session_id: uuid.UUID, *, owner: str | None) -> Participants:
    session = await uow.load_session(session_id, owner=owner)
    agent_name = await uow.scalar(select(agents_table.c.name).where(agents_table.c.id == session.agent_id))
    return Participants(session_id=session.id, user_id=session.user_id, agent_id=session.agent_id,
                        agent_name=agent_name)
