"""Which API keys agents may use and which model servers they may call: the operator's policy.

An agent's `model.apiKeyEnv` names an environment variable of the worker, and `model.baseUrl` where the worker
sends it. Left open, whoever holds the server key could name DATABASE_URL, JWT_SECRET or the server key itself
and have a worker send it as a bearer token to a host of their choosing. So:

- only variables the operator designated for model keys may be named: those listed in MODEL_KEY_VARIABLES
  (default `OPENAI_API_KEY`) or starting with MODEL_KEY_PREFIX (default `MODEL_KEY_`), and never a variable
  this service reads as a setting of its own, whatever the designation says;
- when MODEL_HOSTS is set, agents may call only those hosts (`host`, `host:port`, or `*.example.com` for its
  subdomains); an agent without `baseUrl` calls api.openai.com.

Checked when an agent is created or changed over the API (400 MODEL_ACCESS_DENIED), and again by the worker
right before a call (an agent stored earlier, or a policy tightened since, fails without any request).
"""

from __future__ import annotations

import logging
import os
from functools import cache
from urllib.parse import urlsplit

from core.agents.base import AgentFailure
from core.agents.character import ModelSettings
from core.errors import ModelAccessDenied
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)
NO_KEY = "no-key"  # sent when the agent names no key variable: servers that need none (Ollama, vLLM) ignore it
DEFAULT_BASE_URL = "https://api.openai.com/v1"  # where an agent without `baseUrl` calls
DEFAULT_PORTS = {"http": 80, "https": 443}


@cache
def own_variables() -> frozenset[str]:
    """Every environment variable this service reads as a setting (DATABASE_URL, JWT_SECRET, ...)."""
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(name.upper())
        choices = getattr(field.validation_alias, "choices", None) or ()
        names.update(str(choice).upper() for choice in choices)
    return frozenset(names)


def check_key_variable(name: str | None, settings: Settings) -> None:
    if name is None:
        return
    if name.upper() in own_variables():
        raise ModelAccessDenied(f"apiKeyEnv {name!r} names one of this service's own settings, never a model key",
                                field="settings.model.apiKeyEnv")
    if name not in settings.model_key_variables and not (settings.model_key_prefix and
                                                         name.startswith(settings.model_key_prefix)):
        raise ModelAccessDenied(
            f"apiKeyEnv {name!r} is not designated for model keys: the operator lists them in MODEL_KEY_VARIABLES "
            f"({', '.join(settings.model_key_variables) or 'none'}) or names them {settings.model_key_prefix}*",
            field="settings.model.apiKeyEnv")


def _host_allowed(host: str, port: int | None, allowed: list[str]) -> bool:
    for entry in (entry.strip().lower() for entry in allowed):
        name, _, wanted_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if wanted_port and (port is None or str(port) != wanted_port):
            continue
        if name == host or (name.startswith("*.") and host.endswith(name[1:])):
            return True
    return False


def check_host(base_url: str | None, settings: Settings) -> None:
    if not settings.model_hosts:
        return
    parts = urlsplit(base_url or DEFAULT_BASE_URL)
    try:
        host, port = (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port that is not a number
        host, port = "", None
    if not host or not _host_allowed(host, port, settings.model_hosts):
        raise ModelAccessDenied(f"the model host {host or base_url!r} is not in MODEL_HOSTS, the hosts agents "
                                "may call", field="settings.model.baseUrl")


def check_model(model: ModelSettings | None, settings: Settings) -> None:
    """The API's check of an agent's model settings (create, update)."""
    if model is not None:
        check_key_variable(model.api_key_env, settings)
        check_host(model.base_url, settings)


def model_key(model: ModelSettings, settings: Settings | None = None) -> str:
    """The worker's side: the key to send, read from a designated variable, for an allowed host only."""
    settings = settings or get_settings()
    try:
        check_model(model, settings)
    except ModelAccessDenied as denied:
        log.error("agent model settings refused by the operator's policy: %s", denied.message)
        raise AgentFailure("the agent's model settings are not allowed by this server's policy",
                           code="AGENT_MISCONFIGURED") from None
    if model.api_key_env is None:
        return NO_KEY
    key = os.environ.get(model.api_key_env, "")
    if not key:
        raise AgentFailure(f"the environment variable {model.api_key_env} (the agent's apiKeyEnv) is not set "
                           "in the worker", code="AGENT_MISCONFIGURED")
    return key
