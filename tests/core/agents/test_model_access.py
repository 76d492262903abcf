"""The operator's model policy: which variables may hold model keys, which hosts agents may call."""

from __future__ import annotations

from typing import Any

import pytest

from core.agents.base import AgentFailure
from core.agents.character import ModelSettings
from core.agents.model_access import NO_KEY, check_host, check_key_variable, model_key
from core.errors import ModelAccessDenied
from core.settings import Settings


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "MODEL_KEY_ANTHROPIC"])
def test_designated_variables_by_default(name: str) -> None:
    check_key_variable(name, settings())


@pytest.mark.parametrize("name", ["HOME", "PATH", "OPENAI_KEY", "model_key_lowercase"])
def test_other_variables_are_not_model_keys(name: str) -> None:
    with pytest.raises(ModelAccessDenied, match="not designated"):
        check_key_variable(name, settings())


@pytest.mark.parametrize("name", ["DATABASE_URL", "REDIS_URL", "JWT_SECRET", "JWT_PRIVATE_KEY",
                                  "AGENT_SESSIONS_API_KEY", "ELIZA_SERVER_AUTH_TOKEN", "jwt_secret"])
def test_the_services_own_settings_are_never_model_keys_whatever_the_designation(name: str) -> None:
    careless = settings(model_key_variables=[name, name.upper()], model_key_prefix="")

    with pytest.raises(ModelAccessDenied, match="own settings"):
        check_key_variable(name, careless)


def test_an_explicit_list_and_a_prefix_designate_variables() -> None:
    operator = settings(model_key_variables="GROQ_KEY,TOGETHER_KEY", model_key_prefix="LLM_")

    for name in ("GROQ_KEY", "TOGETHER_KEY", "LLM_LOCAL"):
        check_key_variable(name, operator)
    with pytest.raises(ModelAccessDenied):
        check_key_variable("OPENAI_API_KEY", operator)


@pytest.mark.parametrize(("base_url", "allowed"), [
    (None, True),  # the SDK's default: api.openai.com
    ("https://api.openai.com/v1", True),
    ("http://127.0.0.1:11434/v1", True),
    ("http://127.0.0.1:8000/v1", False),  # the port is part of that entry
    ("https://eu.models.example.com/v1", True),
    ("https://models.example.com.evil.test/v1", False),
    ("https://evil.test/v1", False),
    ("http://169.254.169.254/latest", False),
])
def test_model_hosts_restrict_where_agents_call(base_url: str | None, allowed: bool) -> None:
    operator = settings(model_hosts='["api.openai.com", "127.0.0.1:11434", "*.models.example.com"]')

    if allowed:
        check_host(base_url, operator)
    else:
        with pytest.raises(ModelAccessDenied, match="MODEL_HOSTS"):
            check_host(base_url, operator)


def test_without_model_hosts_any_host_may_be_called() -> None:
    check_host("http://10.0.0.7:8080/v1", settings())


def test_the_worker_reads_no_key_it_may_not_send(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://secret@db/prod")
    stored_before_the_policy = ModelSettings(name="m", base_url="https://evil.test/v1", api_key_env="DATABASE_URL")

    with pytest.raises(AgentFailure) as failure:
        model_key(stored_before_the_policy, settings())

    assert failure.value.code == "AGENT_MISCONFIGURED" and "secret" not in failure.value.reason
    assert model_key(ModelSettings(name="m", api_key_env=None), settings()) == NO_KEY
