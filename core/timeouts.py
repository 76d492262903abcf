"""Session timeout rules (ElizaOS field names and bounds), as pure functions.

Config values are in minutes; `minute` says how long one lasts (`TIMEOUT_MINUTE_SECONDS`, 60 s except in
tests), so every timeout computation of the API, the workers and the beat scales the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from core.errors import InvalidTimeoutConfig
from core.schemas import TimeoutConfig, TimeoutConfigUpdate
from core.sessions.status import LIVE_STATUSES, SessionStatusName
from core.settings import Settings

CONFIG_FIELDS = ("timeout_minutes", "auto_renew", "max_duration_minutes", "warning_threshold_minutes")


def global_config(settings: Settings) -> TimeoutConfig:
    return TimeoutConfig(**{name: getattr(settings, name) for name in CONFIG_FIELDS})


def agent_overrides(agent_settings: dict[str, Any]) -> TimeoutConfigUpdate:
    """The agent's `timeoutConfig` setting; raises InvalidTimeoutConfig when it breaks the bounds."""
    try:
        return TimeoutConfigUpdate.model_validate(agent_settings.get("timeoutConfig") or {})
    except ValidationError as exc:
        raise InvalidTimeoutConfig("settings.timeoutConfig is out of bounds",
                                   errors=[{"field": ".".join(map(str, e["loc"])), "message": e["msg"]}
                                           for e in exc.errors(include_url=False, include_input=False)]) from None


def resolve(settings: Settings, agent_settings: dict[str, Any], request: TimeoutConfigUpdate | None) -> TimeoutConfig:
    """Precedence: global environment < the agent's `timeoutConfig` < the request's `timeoutConfig`."""
    return merge(merge(global_config(settings), agent_overrides(agent_settings)), request)


def merge(current: TimeoutConfig, update: TimeoutConfigUpdate | None) -> TimeoutConfig:
    """Fields given in `update` replace those of `current`; the rest are kept (PATCH semantics).

    An inherited warning threshold or maximum duration that no longer fits a newly given timeout is adjusted
    to fit; values given together that contradict each other are refused.
    """
    given = update.model_dump(exclude_none=True) if update else {}
    merged = current.model_copy(update=given)
    if merged.warning_threshold_minutes >= merged.timeout_minutes:
        if "warning_threshold_minutes" in given:
            raise InvalidTimeoutConfig("warningThresholdMinutes must be less than timeoutMinutes",
                                       timeoutConfig=merged.model_dump(by_alias=True))
        merged.warning_threshold_minutes = merged.timeout_minutes - 1
    if merged.max_duration_minutes < merged.timeout_minutes:
        if "max_duration_minutes" in given:
            raise InvalidTimeoutConfig("maxDurationMinutes must be at least timeoutMinutes",
                                       timeoutConfig=merged.model_dump(by_alias=True))
        merged.max_duration_minutes = merged.timeout_minutes
    return merged


def config_of(row: Any) -> TimeoutConfig:
    return TimeoutConfig(**{name: getattr(row, name) for name in CONFIG_FIELDS})


def hard_deadline(created_at: datetime, config: TimeoutConfig, minute: timedelta) -> datetime:
    return created_at + config.max_duration_minutes * minute


def renewed_expiry(created_at: datetime, now: datetime, config: TimeoutConfig, minute: timedelta) -> datetime:
    """Idle timeout from now, never past the session's maximum duration."""
    return min(now + config.timeout_minutes * minute, hard_deadline(created_at, config, minute))


@dataclass(frozen=True)
class Renewal:
    """What activity (a message, a heartbeat) does to a session's expiry."""

    expires_at: datetime
    renewed: bool  # the expiry moved later
    blocked: bool  # auto-renew wanted a full idle window, the maximum duration cut it short or refused it


def renew_on_activity(created_at: datetime, expires_at: datetime, now: datetime, config: TimeoutConfig,
                      minute: timedelta) -> Renewal:
    if not config.auto_renew:
        return Renewal(expires_at, renewed=False, blocked=False)
    wanted = now + config.timeout_minutes * minute
    deadline = hard_deadline(created_at, config, minute)
    blocked = deadline < wanted
    renewed = min(wanted, deadline)
    if renewed <= expires_at:
        return Renewal(expires_at, renewed=False, blocked=blocked)
    return Renewal(renewed, renewed=True, blocked=blocked)


def warn_at(expires_at: datetime, config: TimeoutConfig, minute: timedelta) -> datetime:
    """When the beat sends the expiry warning for this expiry."""
    return expires_at - config.warning_threshold_minutes * minute


def expiry_values(expires_at: datetime, config: TimeoutConfig, minute: timedelta) -> dict[str, Any]:
    """The columns to write whenever a session's expiry changes: a new window earns a new warning."""
    return {"expires_at": expires_at, "warn_at": warn_at(expires_at, config, minute), "warned_at": None}


def time_remaining_ms(expires_at: datetime, now: datetime) -> int:
    return max(0, int((expires_at - now).total_seconds() * 1000))


def is_near_expiration(expires_at: datetime, now: datetime, warning_threshold_minutes: int, minute: timedelta) -> bool:
    remaining = expires_at - now
    return timedelta(0) < remaining <= warning_threshold_minutes * minute


def effective_status(status: str, expires_at: datetime, now: datetime) -> SessionStatusName:
    """An active or paused session past its deadline is expired, even before the sweep records it."""
    if status in LIVE_STATUSES and expires_at <= now:
        return SessionStatusName.EXPIRED
    return SessionStatusName(status)
