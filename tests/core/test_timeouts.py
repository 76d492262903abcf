"""Timeout rules, table-driven: precedence, merging, bounds, renewal at max duration, warnings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from core import timeouts
from core.errors import InvalidTimeoutConfig
from core.schemas import TimeoutConfig, TimeoutConfigUpdate
from core.settings import Settings

MINUTE = timedelta(minutes=1)
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def config(**fields: Any) -> TimeoutConfig:
    base = {"timeout_minutes": 30, "auto_renew": True, "max_duration_minutes": 720, "warning_threshold_minutes": 5}
    return TimeoutConfig(**{**base, **fields})


def update(**fields: Any) -> TimeoutConfigUpdate:
    return TimeoutConfigUpdate.model_validate(fields)


def test_defaults_are_elizaos_defaults() -> None:
    assert timeouts.global_config(Settings(_env_file=None)) == config()


@pytest.mark.parametrize(("env", "agent", "request_", "expected"), [
    ({}, {}, None, config()),
    ({"timeout_minutes": 60}, {}, None, config(timeout_minutes=60)),
    ({"timeout_minutes": 60}, {"timeoutMinutes": 45}, None, config(timeout_minutes=45)),
    ({"timeout_minutes": 60}, {"timeoutMinutes": 45}, {"timeoutMinutes": 10}, config(timeout_minutes=10)),
    ({}, {"autoRenew": False, "warningThresholdMinutes": 10}, {"timeoutMinutes": 20},
     config(timeout_minutes=20, auto_renew=False, warning_threshold_minutes=10)),
    ({"max_duration_minutes": 1000}, {"maxDurationMinutes": 900}, {}, config(max_duration_minutes=900)),
], ids=["global", "env", "agent-over-env", "request-over-agent", "fields-from-each-layer", "empty-request"])
def test_precedence_env_then_agent_then_request(env: dict[str, Any], agent: dict[str, Any],
                                                request_: dict[str, Any] | None, expected: TimeoutConfig) -> None:
    settings = Settings(_env_file=None, **env)
    given = update(**request_) if request_ is not None else None
    assert timeouts.resolve(settings, {"timeoutConfig": agent}, given) == expected


@pytest.mark.parametrize(("current", "patch", "expected"), [
    (config(timeout_minutes=60, auto_renew=False), {"warningThresholdMinutes": 10},
     config(timeout_minutes=60, auto_renew=False, warning_threshold_minutes=10)),
    (config(), {"timeoutMinutes": 5}, config(timeout_minutes=5, warning_threshold_minutes=4)),
    (config(max_duration_minutes=60), {"timeoutMinutes": 120}, config(timeout_minutes=120, max_duration_minutes=120)),
    (config(), {}, config()),
], ids=["keeps-unpatched-fields", "inherited-warning-fitted", "inherited-max-fitted", "empty-patch"])
def test_patch_merges_with_the_current_config(current: TimeoutConfig, patch: dict[str, Any],
                                              expected: TimeoutConfig) -> None:
    assert timeouts.merge(current, update(**patch)) == expected


@pytest.mark.parametrize("patch", [
    {"timeoutMinutes": 10, "warningThresholdMinutes": 10},
    {"timeoutMinutes": 60, "maxDurationMinutes": 30},
    {"warningThresholdMinutes": 30},
], ids=["warning-not-below-timeout", "max-below-timeout", "warning-given-alone-too-big"])
def test_contradictory_values_given_together_are_refused(patch: dict[str, Any]) -> None:
    with pytest.raises(InvalidTimeoutConfig):
        timeouts.merge(config(), update(**patch))


@pytest.mark.parametrize("fields", [
    {"timeoutMinutes": 4}, {"timeoutMinutes": 1441}, {"maxDurationMinutes": 4}, {"warningThresholdMinutes": 0},
    {"warningThresholdMinutes": 121},
])
def test_request_bounds_are_elizaos_bounds(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        update(**fields)


@pytest.mark.parametrize("env", [{"timeout_minutes": 4}, {"timeout_minutes": 1441},
                                 {"timeout_minutes": 10, "warning_threshold_minutes": 10},
                                 {"timeout_minutes": 60, "max_duration_minutes": 30}])
def test_env_defaults_obey_the_same_bounds(env: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **env)


def test_agent_timeout_config_out_of_bounds_is_an_invalid_timeout_config() -> None:
    with pytest.raises(InvalidTimeoutConfig):
        timeouts.resolve(Settings(_env_file=None), {"timeoutConfig": {"timeoutMinutes": 2}}, None)


@pytest.mark.parametrize(("created", "now", "cfg", "expires_at", "renewed", "blocked", "new_expiry"), [
    # Plenty of room: a full idle window from now.
    (T0, T0 + 10 * MINUTE, config(), T0 + 30 * MINUTE, True, False, T0 + 40 * MINUTE),
    # Same instant: nothing to move, and nothing blocked.
    (T0, T0, config(), T0 + 30 * MINUTE, False, False, T0 + 30 * MINUTE),
    # Near the maximum duration: extended only up to it.
    (T0, T0 + 700 * MINUTE, config(), T0 + 710 * MINUTE, True, True, T0 + 720 * MINUTE),
    # Already at the maximum duration: refused, the message still goes through.
    (T0, T0 + 705 * MINUTE, config(), T0 + 720 * MINUTE, False, True, T0 + 720 * MINUTE),
    # Auto-renew off: activity never moves the expiry.
    (T0, T0 + 10 * MINUTE, config(auto_renew=False), T0 + 30 * MINUTE, False, False, T0 + 30 * MINUTE),
], ids=["room", "same-instant", "capped", "at-max", "auto-renew-off"])
def test_renewal_on_activity(created: datetime, now: datetime, cfg: TimeoutConfig, expires_at: datetime,
                             renewed: bool, blocked: bool, new_expiry: datetime) -> None:
    renewal = timeouts.renew_on_activity(created, expires_at, now, cfg, MINUTE)
    assert (renewal.renewed, renewal.blocked, renewal.expires_at) == (renewed, blocked, new_expiry)


@pytest.mark.parametrize(("remaining", "threshold", "near"), [
    (timedelta(minutes=6), 5, False),
    (timedelta(minutes=5), 5, True),
    (timedelta(seconds=1), 5, True),
    (timedelta(0), 5, False),
    (-timedelta(seconds=1), 5, False),
    (timedelta(minutes=14), 15, True),
])
def test_is_near_expiration(remaining: timedelta, threshold: int, near: bool) -> None:
    assert timeouts.is_near_expiration(T0 + remaining, T0, threshold, MINUTE) is near


@pytest.mark.parametrize(("status", "expires_in", "effective"), [
    ("active", MINUTE, "active"), ("active", timedelta(0), "expired"), ("paused", -MINUTE, "expired"),
    ("paused", MINUTE, "paused"), ("ended", -MINUTE, "ended"), ("expired", MINUTE, "expired"),
])
def test_effective_status(status: str, expires_in: timedelta, effective: str) -> None:
    assert timeouts.effective_status(status, T0 + expires_in, T0) == effective


def test_minute_length_scales_every_computation() -> None:
    second = timedelta(seconds=1)  # a test "minute"
    cfg = config(timeout_minutes=6, warning_threshold_minutes=3, max_duration_minutes=10)

    expiry = timeouts.renewed_expiry(T0, T0, cfg, second)

    assert expiry == T0 + timedelta(seconds=6)
    assert timeouts.warn_at(expiry, cfg, second) == T0 + timedelta(seconds=3)
    assert timeouts.hard_deadline(T0, cfg, second) == T0 + timedelta(seconds=10)
    assert timeouts.is_near_expiration(expiry, T0 + timedelta(seconds=4), 3, second)
    assert Settings(_env_file=None, timeout_minute_seconds=0.5).timeout_minute == timedelta(milliseconds=500)
