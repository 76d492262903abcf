"""The client's light copies of the server's public schemas: the same fields, read from the same JSON."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest

from agent_sessions_client import schemas as client_schemas
from core import schemas as server_schemas

COPIES = [kind for kind in vars(client_schemas).values()
          if isinstance(kind, type) and issubclass(kind, client_schemas.Schema) and kind is not client_schemas.Schema]


@pytest.mark.parametrize("kind", COPIES, ids=lambda kind: kind.__name__)
def test_each_client_schema_has_the_fields_of_the_server_schema_of_its_name(kind: type) -> None:
    server = getattr(server_schemas, kind.__name__)

    assert {field.name for field in dataclasses.fields(kind)} == set(server.model_fields)


def test_a_server_message_reads_back_with_its_types() -> None:
    sent = server_schemas.MessagePublic(
        id=uuid.uuid4(), session_id=uuid.uuid4(), seq=2, role="agent", is_agent=True, author_id="eliza",
        content="Hello", status="completed", reply_to=uuid.uuid4(), metadata={"thought": "greet"}, error=None,
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))

    read = client_schemas.MessagePublic.from_json(sent.model_dump(mode="json", by_alias=True))

    assert dataclasses.asdict(read) == sent.model_dump()
