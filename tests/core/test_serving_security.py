"""What the API refuses to serve with: no credentials outside dev/test, weak secrets (core.auth)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from core.auth import InsecureSettings, check_serving_security, secret_weakness
from core.settings import Settings

STRONG = secrets.token_urlsafe(32)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize("secret", ["a", "secret", "hunter2-hunter2", "passwordpasswordpasswordpassword", "a" * 64,
                                    "abababababababababababababababababab"])
def test_short_or_repetitive_secrets_are_weak(secret: str) -> None:
    assert secret_weakness(secret) is not None


@pytest.mark.parametrize("secret", [secrets.token_urlsafe(32), secrets.token_hex(32),
                                    "test-server-key-0123456789abcdef"])
def test_random_secrets_of_32_characters_or_more_are_strong(secret: str) -> None:
    assert secret_weakness(secret) is None


def test_production_without_any_key_is_refused_with_how_to_fix_it() -> None:
    with pytest.raises(InsecureSettings) as refusal:
        check_serving_security(settings(environment="production"))

    message = str(refusal.value)
    assert "AGENT_SESSIONS_API_KEY" in message and "ALLOW_UNAUTHENTICATED=true" in message
    assert "secrets.token_urlsafe(32)" in message


def test_any_environment_but_dev_and_test_counts_as_production() -> None:
    with pytest.raises(InsecureSettings):
        check_serving_security(settings(environment="staging"))


@pytest.mark.parametrize("environment", ["dev", "test"])
def test_dev_and_test_may_run_open_with_a_warning(environment: str) -> None:
    assert "authentication is off" in (check_serving_security(settings(environment=environment)) or "")


def test_production_runs_open_only_when_the_operator_says_so_and_is_told_loudly() -> None:
    warning = check_serving_security(settings(environment="production", allow_unauthenticated=True))

    assert warning is not None and warning.startswith("AUTHENTICATION IS OFF")


@pytest.mark.parametrize("values", [{"AGENT_SESSIONS_API_KEY": "secret"}, {"ELIZA_SERVER_AUTH_TOKEN": "a"},
                                    {"AGENT_SESSIONS_API_KEY": STRONG, "jwt_secret": "secret"}])
def test_weak_secrets_are_refused_in_every_environment(values: dict[str, str]) -> None:
    for environment in ("production", "dev"):
        with pytest.raises(InsecureSettings, match=r"too weak.*secrets\.token_urlsafe"):
            check_serving_security(settings(environment=environment, **values))


def test_strong_secrets_serve_without_a_warning() -> None:
    assert check_serving_security(settings(AGENT_SESSIONS_API_KEY=STRONG, jwt_secret=secrets.token_hex(32))) is None
