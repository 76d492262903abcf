from __future__ import annotations

import time
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version

import redis.asyncio as aredis
from sqlalchemy import func, select

from core.models import agents_table, sessions_table
from core.schemas import ComponentHealth, Health, HealthStatus, ServerCheck, ServerHealth
from core.sessions.status import LIVE_STATUSES, SessionStatusName
from core.sessions.uow import AsyncUnitOfWork
from core.settings import Settings

S = sessions_table.c


def _version() -> str:
    try:
        return version("agent-sessions")
    except PackageNotFoundError:
        return "unknown"


async def check_health(uow: AsyncUnitOfWork, client: aredis.Redis, settings: Settings, now: datetime,
                       uptime: float, events_connected: bool) -> Health:
    components: dict[str, ComponentHealth] = {}
    active = expiring = 0
    # "Soon" is the global warning threshold (5 minutes unless configured).
    soon = now + settings.warning_threshold_minutes * settings.timeout_minute
    started = time.perf_counter()
    try:
        active = await uow.scalar(select(func.count()).where(S.status == SessionStatusName.ACTIVE.value,
                                                                   S.expires_at > now)) or 0
        expiring = await uow.scalar(select(func.count()).where(
            S.status == SessionStatusName.ACTIVE.value, S.expires_at > now, S.expires_at <= soon)) or 0
        components["database"] = ComponentHealth(status="up", latency_ms=_ms(started))
    except Exception as exc:  # health reports failures, it does not raise them
        components["database"] = ComponentHealth(status="down", error=type(exc).__name__)
    started = time.perf_counter()
    try:
        await client.ping()
        components["redis"] = ComponentHealth(status="up", latency_ms=_ms(started))
    except Exception as exc:
        components["redis"] = ComponentHealth(status="down", error=type(exc).__name__)
    components["eventBus"] = ComponentHealth(status="up" if events_connected else "down")
    status: HealthStatus
    if components["database"].status == "down":
        status = "unhealthy"
    elif any(component.status == "down" for component in components.values()):
        status = "degraded"
    else:
        status = "healthy"
    return Health(status=status, active_sessions=active, expiring_soon=expiring, timestamp=now, uptime=round(uptime, 3),
                  version=_version(), components=components)


async def check_server_health(uow: AsyncUnitOfWork, client: aredis.Redis, settings: Settings, now: datetime,
                              uptime: float, events_connected: bool) -> ServerHealth:
    """The same checks, in the shape ElizaOS's server routes answer."""
    health = await check_health(uow, client, settings, now, uptime, events_connected)
    agents = 0
    if health.components["database"].status == "up":
        agents = await uow.scalar(select(func.count()).select_from(agents_table)) or 0
    checks = {name: _server_check(component) for name, component in health.components.items()}
    return ServerHealth(status=health.status, uptime=health.uptime, timestamp=now, version=health.version,
                        checks=checks, dependencies={"agents": "healthy" if agents else "no_agents"},
                        agent_count=agents)


def _server_check(component: ComponentHealth) -> ServerCheck:
    if component.status == "down":
        return ServerCheck(status="fail", message=f"down: {component.error or 'not connected'}")
    latency = f" in {component.latency_ms} ms" if component.latency_ms is not None else ""
    return ServerCheck(status="pass", message=f"up{latency}")


def is_ready(health: Health) -> bool:
    """Whether this process can take a message now: every component up (a degraded process cannot)."""
    return health.status == "healthy"


async def count_open_sessions(uow: AsyncUnitOfWork) -> dict[str, int]:
    """Sessions by status among those that can still take messages (served by the status index)."""
    live = [status.value for status in LIVE_STATUSES]
    rows = await uow.execute(select(S.status, func.count()).where(S.status.in_(live)).group_by(S.status))
    counts: dict[str, int] = dict(rows.tuples().all())
    return counts


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
