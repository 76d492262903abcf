"""The server key cannot make a worker send the service's own secrets to a model server (API + worker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import create_engine, insert

from api.app import create_app
from core.clock import utcnow
from core.models import agents_table
from core.settings import Settings
from tests.support.databases import REDIS_URL
from tests.support.factories import create_session, send_message
from tests.support.openai_server import FakeOpenAI
from tests.support.processes import Stack


def llm_character(fake: FakeOpenAI, model: str, **model_settings: Any) -> dict[str, Any]:
    return {"name": f"llm-{uuid.uuid4().hex[:8]}", "provider": "openai",
            "settings": {"model": {"name": model, "baseUrl": fake.base_url, **model_settings}}}


@pytest.mark.parametrize("variable", ["DATABASE_URL", "JWT_SECRET", "AGENT_SESSIONS_API_KEY", "HOME"])
def test_an_agent_cannot_name_a_variable_not_designated_for_model_keys(
        client: httpx.Client, fake_openai: FakeOpenAI, variable: str) -> None:
    model = fake_openai.add_model(f"model-{uuid.uuid4().hex[:8]}")

    created = client.post("/api/agents", json=llm_character(fake_openai, model, apiKeyEnv=variable))

    assert created.status_code == 400, created.text
    assert created.json()["error"]["code"] == "MODEL_ACCESS_DENIED"
    assert created.json()["error"]["details"]["field"] == "settings.model.apiKeyEnv"


def test_a_patch_cannot_point_an_agent_at_a_service_secret(client: httpx.Client, fake_openai: FakeOpenAI) -> None:
    model = fake_openai.add_model(f"model-{uuid.uuid4().hex[:8]}")
    agent = client.post("/api/agents", json=llm_character(fake_openai, model, apiKeyEnv="MODEL_KEY_TEST_LLM")).json()

    patched = client.patch(f"/api/agents/{agent['id']}", json={"settings": {"model": {"apiKeyEnv": "REDIS_URL"}}})

    assert patched.status_code == 400 and patched.json()["error"]["code"] == "MODEL_ACCESS_DENIED"
    assert client.get(f"/api/agents/{agent['id']}").json()["settings"]["model"]["apiKeyEnv"] == "MODEL_KEY_TEST_LLM"


def test_the_worker_sends_nothing_for_an_agent_stored_before_the_policy(
        stack: Stack, client: httpx.Client, fake_openai: FakeOpenAI) -> None:
    model = fake_openai.add_model(f"model-{uuid.uuid4().hex[:8]}")
    agent_id = uuid.uuid4()
    engine = create_engine(stack.env["DATABASE_URL"].replace("postgresql:", "postgresql+psycopg:"))
    with engine.begin() as conn:  # as an older version let the API store it
        conn.execute(insert(agents_table).values(
            id=agent_id, name=f"old-{agent_id.hex[:8]}", provider="openai", created_at=utcnow(),
            settings=llm_character(fake_openai, model, apiKeyEnv="DATABASE_URL")["settings"]))
    engine.dispose()
    sid = create_session(client, agentId=str(agent_id))["sessionId"]

    response = send_message(client, sid, "Hello?")

    assert response.status_code == 502, response.text
    assert fake_openai.requests_for(model) == []  # the database URL never left the worker
    assert stack.env["DATABASE_URL"] not in response.text


@pytest.fixture()
def hosts_restricted(sqlite_url: str, redis_prefix: str) -> Iterator[TestClient]:  # type: ignore[type-arg]
    settings = Settings(_env_file=None, database_url=sqlite_url, redis_url=REDIS_URL,  # type: ignore[call-arg]
                        redis_prefix=f"{redis_prefix}hosts:", environment="test", model_hosts="api.openai.com")
    with TestClient(app=create_app(settings)) as http:
        yield http


def test_model_hosts_limit_the_servers_an_agent_may_call(hosts_restricted: TestClient) -> None:  # type: ignore[type-arg]
    internal = {"name": f"llm-{uuid.uuid4().hex[:8]}", "provider": "openai",
                "settings": {"model": {"name": "m", "baseUrl": "http://169.254.169.254/latest"}}}
    openai = {"name": f"llm-{uuid.uuid4().hex[:8]}", "provider": "openai", "settings": {"model": {"name": "m"}}}

    refused = hosts_restricted.post("/api/agents", json=internal)
    accepted = hosts_restricted.post("/api/agents", json=openai)

    assert refused.status_code == 400 and refused.json()["error"]["details"]["field"] == "settings.model.baseUrl"
    assert accepted.status_code == 201
