"""Settings that close the health and docs routes (open by default for load balancers and API browsers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from api.app import create_app
from core.settings import Settings
from tests.support.databases import REDIS_URL
from tests.support.tokens import SERVER, SERVER_KEY

HEALTH = "/api/messaging/sessions/health"


@pytest.fixture()
def closed_app(sqlite_url: str, redis_prefix: str) -> Iterator[TestClient]:  # type: ignore[type-arg]
    settings = Settings(_env_file=None, database_url=sqlite_url, redis_url=REDIS_URL,  # type: ignore[call-arg]
                        redis_prefix=f"{redis_prefix}closed:", AGENT_SESSIONS_API_KEY=SERVER_KEY,
                        public_health=False, public_docs=False)
    with TestClient(app=create_app(settings)) as client:
        yield client


def test_health_and_docs_need_the_key_when_configured_closed(closed_app: TestClient) -> None:  # type: ignore[type-arg]
    for path in (HEALTH, "/schema/openapi.json"):
        refused = closed_app.get(path)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "UNAUTHORIZED"
        assert closed_app.get(path, headers=SERVER).status_code == 200
