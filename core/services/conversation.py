"""Read models of the conversation state: its per-exchange history and dashboard aggregates."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select

from core.analysis import initial_state
from core.analysis.conversation import STAGES
from core.analysis.engagement import LEVELS
from core.analysis.sentiment import LABELS
from core.errors import InvalidInput
from core.models import messages_table, sessions_table
from core.schemas import ConversationStats, StateHistoryEntry, StateHistoryPage
from core.services.messages import page_of_messages
from core.sessions.status import LIVE_STATUSES, MessageStatus, Role, SessionStatusName
from core.sessions.uow import AsyncUnitOfWork
from core.settings import Settings
from core.validation import moment_from

M = messages_table.c
S = sessions_table.c


async def state_history(uow: AsyncUnitOfWork, settings: Settings, session_id: uuid.UUID, *, owner: str | None,
                        limit: str | None, before: str | None, after: str | None) -> StateHistoryPage:
    """One entry per answered exchange, read from the analysis the worker stored on its user message."""
    page = await page_of_messages(uow, settings, session_id, M.role == Role.USER.value,
                                  M.status == MessageStatus.COMPLETED.value, owner=owner, limit=limit, before=before,
                                  after=after)
    entries = [
        StateHistoryEntry(message_id=row.id, seq=row.seq, created_at=row.created_at, **row.metadata["analysis"])
        for row in page.rows if "analysis" in row.metadata
    ]
    return StateHistoryPage(entries=entries, has_more=page.has_more, cursors=page.cursors)


def parse_time_range(created_from: str | None, created_to: str | None) -> tuple[datetime | None, datetime | None]:
    bounds: list[datetime | None] = []
    for field, raw in (("from", created_from), ("to", created_to)):
        if raw is None:
            bounds.append(None)
            continue
        try:
            bounds.append(moment_from(raw))
        except ValueError:
            raise InvalidInput(f"{field} must be an ISO 8601 timestamp or epoch milliseconds",
                               field=field, value=raw[:64]) from None
    start, end = bounds
    if start is not None and end is not None and start > end:
        raise InvalidInput("from must not be after to", field="from")
    return start, end


def _status_is(status: str, now: datetime) -> Any:
    """The status as the API reports it: a session past its deadline is expired before the sweep notices."""
    live = S.status.in_([live_status.value for live_status in LIVE_STATUSES])
    if status == SessionStatusName.EXPIRED:
        return or_(S.status == SessionStatusName.EXPIRED.value, and_(live, S.expires_at <= now))
    if status in LIVE_STATUSES:
        return and_(S.status == status, S.expires_at > now)
    return S.status == status


async def conversation_stats(uow: AsyncUnitOfWork, now: datetime, *, owner: str | None, agent_id: uuid.UUID | None,
                             created_from: datetime | None, created_to: datetime | None,
                             status: str | None) -> ConversationStats:
    """Counts by stage, sentiment and engagement and average confidence and sentiment, aggregated in SQL.

    One scan of the matching sessions grouped by (stage, sentiment, engagement): at most 60 groups come
    back, however many sessions there are. `from` is inclusive, `to` exclusive (on created_at). A user
    (`owner`) sees the aggregates of its own sessions only."""
    filters = [] if owner is None else [S.user_id == owner]
    if agent_id is not None:
        filters.append(S.agent_id == agent_id)
    if created_from is not None:
        filters.append(S.created_at >= created_from)
    if created_to is not None:
        filters.append(S.created_at < created_to)
    if status is not None:
        filters.append(_status_is(status, now))
    initial = initial_state()
    # JSON extraction that both Postgres (JSONB ->> / #>>) and SQLite (json_extract) compile.
    current = select(
        func.coalesce(S.state["stage"].as_string(), initial["stage"]).label("stage"),
        func.coalesce(S.state[("sentiment", "label")].as_string(), initial["sentiment"]["label"]).label("sentiment"),
        func.coalesce(S.state[("engagement", "level")].as_string(), initial["engagement"]["level"]).label("engagement"),
        S.state[("sentiment", "score")].as_float().label("sentiment_score"),
        S.state["agentConfidence"].as_float().label("confidence"),
        S.state["turns"].as_integer().label("turns"),
    ).where(*filters).subquery()
    c = current.c
    groups = (await uow.execute(select(
        c.stage, c.sentiment, c.engagement, func.count().label("sessions"),
        func.count(c.turns).label("with_exchanges"), func.coalesce(func.sum(c.turns), 0).label("turns"),
        func.count(c.confidence).label("confidence_count"), func.sum(c.confidence).label("confidence_sum"),
        func.count(c.sentiment_score).label("score_count"), func.sum(c.sentiment_score).label("score_sum"),
    ).group_by(c.stage, c.sentiment, c.engagement))).all()
    by_stage: dict[str, int] = dict.fromkeys(STAGES, 0)
    by_sentiment: dict[str, int] = dict.fromkeys(LABELS, 0)
    by_engagement: dict[str, int] = dict.fromkeys(LEVELS, 0)
    for group in groups:
        by_stage[group.stage] = by_stage.get(group.stage, 0) + group.sessions
        by_sentiment[group.sentiment] = by_sentiment.get(group.sentiment, 0) + group.sessions
        by_engagement[group.engagement] = by_engagement.get(group.engagement, 0) + group.sessions
    with_exchanges = sum(group.with_exchanges for group in groups)
    return ConversationStats(
        total=sum(group.sessions for group in groups), with_exchanges=with_exchanges,
        by_stage=by_stage, by_sentiment=by_sentiment, by_engagement=by_engagement,
        average_agent_confidence=_average(groups, "confidence"), average_sentiment_score=_average(groups, "score"),
        average_turns=round(sum(group.turns for group in groups) / with_exchanges, 3) if with_exchanges else None,
    )


def _average(groups: Sequence[Any], name: str) -> float | None:
    count = sum(getattr(group, f"{name}_count") for group in groups)
    total = sum(getattr(group, f"{name}_sum") or 0.0 for group in groups)
    return round(total / count, 3) if count else None
