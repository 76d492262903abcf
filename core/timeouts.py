"""Session timeout rules (ElizaOS field names and bounds), as pure functions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from core.errors import InvalidTimeoutConfig
from core.schemas import TimeoutConfig, TimeoutConfigUpdate
from core.settings import Settings

CONFIG_FIELDS = ("timeout_minutes", "auto_renew", "max_duration_minutes", "warning_threshold_minutes")


def default_config(settings: Settings, agent_settings: dict[str, Any]) -> TimeoutConfig:
    """Global defaults, overridden by the agent's `timeoutConfig` setting."""
    base = TimeoutConfig(timeout_minutes=settings.timeout_minutes, auto_renew=settings.auto_renew,
                         max_duration_minutes=settings.max_duration_minutes,
                         warning_threshold_minutes=settings.warning_threshold_minutes)
    agent_defaults = agent_settings.get("timeoutConfig") or {}
    try:
        return merge(base, TimeoutConfigUpdate.model_validate(agent_defaults))
    except ValueError:
        return base  # agent settings are validated when the agent is saved; never fail a session for them


def merge(current: TimeoutConfig, update: TimeoutConfigUpdate | None) -> TimeoutConfig:
    merged = current.model_copy(update=update.model_dump(exclude_none=True) if update else {})
    if merged.warning_threshold_minutes >= merged.timeout_minutes:
        raise InvalidTimeoutConfig("warningThresholdMinutes must be less than timeoutMinutes",
                                   timeoutConfig=merged.model_dump(by_alias=True))
    if merged.max_duration_minutes < merged.timeout_minutes:
        raise InvalidTimeoutConfig("maxDurationMinutes must be at least timeoutMinutes",
                                   timeoutConfig=merged.model_dump(by_alias=True))
    return merged


def config_of(row: Any) -> TimeoutConfig:
    return TimeoutConfig(**{name: getattr(row, name) for name in CONFIG_FIELDS})


def hard_deadline(created_at: datetime, config: TimeoutConfig) -> datetime:
    return created_at + timedelta(minutes=config.max_duration_minutes)


def renewed_expiry(created_at: datetime, now: datetime, config: TimeoutConfig) -> datetime:
    """Idle timeout from now, never past the session's maximum duration."""
    return min(now + timedelta(minutes=config.timeout_minutes), hard_deadline(created_at, config))


def time_remaining_ms(expires_at: datetime, now: datetime) -> int:
    return max(0, int((expires_at - now).total_seconds() * 1000))


def is_near_expiration(expires_at: datetime, now: datetime, warning_threshold_minutes: int) -> bool:
    remaining = expires_at - now
    return timedelta(0) < remaining <= timedelta(minutes=warning_threshold_minutes)


def effective_status(status: str, expires_at: datetime, now: datetime) -> str:
    """An active or paused session past its deadline is expired, even before the sweep records it."""
    if status in ("active", "paused") and expires_at <= now:
        return "expired"
    return status
