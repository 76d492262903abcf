"""Property tests of every parser of query values and bodies, over HTTP against a real API (SQLite and
Postgres): whatever the value, the answer is never a 500, and a refusal is the JSON error shape.

The strategies aim where schemathesis' generic strings did not: integers far beyond 64 bits, dates at the
edges of the calendar with extreme UTC offsets, `seq:` cursors, control characters, deep nesting. The
examples pin the values that once answered 500.
"""

from __future__ import annotations

import base64
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.requests import MAX_JSON_DEPTH
from core.models import DEFAULT_AGENT_ID
from tests.support.factories import SESSIONS, create_session

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
HUGE = "99999999999999999999"  # beyond 64 bits

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)  # anything a URL can carry
integers = st.integers(min_value=-(10**30), max_value=10**30) | st.sampled_from([2**63, -(2**63) - 1, 2**63 - 1])
offsets = st.none() | st.sampled_from([timezone(timedelta(hours=hours, minutes=minutes))
                                       for hours, minutes in ((14, 0), (-14, 0), (23, 59), (-23, -59), (0, 0))])
dates = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59),  # noqa: DTZ001  naive bounds: hypothesis adds the zone
                     timezones=offsets)
moments = st.one_of(dates.map(datetime.isoformat), integers.map(str), text)  # ISO 8601, epoch ms, junk
positions = st.one_of(moments, integers.map(lambda n: f"seq:{n}"))  # and history cursors


def json_nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def assert_no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["error"]["code"] and body["message"] == body["error"]["message"]


@pytest.fixture(scope="module")
def session_id(stack: Any) -> str:
    with httpx.Client(base_url=stack.base_url, timeout=30) as http:
        sid = create_session(http)["sessionId"]
        http.post(f"{SESSIONS}/{sid}/messages", json={"content": "hello", "transport": "websocket"})
        return sid


@FUZZ
@given(before=st.none() | positions, after=st.none() | positions, path=st.sampled_from(["messages", "state/history"]))
@example(before=f"seq:{HUGE}", after=None, path="messages")
@example(before=None, after=f"seq:-{HUGE}", path="state/history")
def test_history_positions_never_answer_500(client: httpx.Client, session_id: str, before: str | None,
                                            after: str | None, path: str) -> None:
    params = {name: value for name, value in (("before", before), ("after", after)) if value is not None}

    assert_no_server_error(client.get(f"{SESSIONS}/{session_id}/{path}", params=params))


@FUZZ
@given(before=st.none() | dates.map(datetime.isoformat), after=st.none() | dates.map(datetime.isoformat))
@example(before="0001-01-01T00:00:00+14:00", after=None)
@example(before=None, after="9999-12-31T23:59:59-14:00")
def test_history_dates_at_the_edges_of_the_calendar_never_answer_500(client: httpx.Client, session_id: str,
                                                                     before: str | None, after: str | None) -> None:
    params = {name: value for name, value in (("before", before), ("after", after)) if value is not None}

    assert_no_server_error(client.get(f"{SESSIONS}/{session_id}/messages", params=params))


@FUZZ
@given(start=st.none() | moments, end=st.none() | moments, agent=st.none() | text)
@example(start="0001-01-01T00:00:00+14:00", end=None, agent=None)
@example(start=None, end="9999-12-31T23:59:59-14:00", agent=None)
def test_stats_time_range_never_answers_500(client: httpx.Client, start: str | None, end: str | None,
                                            agent: str | None) -> None:
    params = {name: value for name, value in (("from", start), ("to", end), ("agentId", agent)) if value is not None}

    assert_no_server_error(client.get(f"{SESSIONS}/stats", params=params))


cursors = st.one_of(text, st.builds(lambda moment, ident: base64.urlsafe_b64encode(f"{moment}|{ident}".encode())
                                    .decode(), moments, st.uuids()))


@FUZZ
@given(cursor=st.none() | cursors, user_id=st.none() | text, agent_id=st.none() | text,
       limit=st.none() | integers.map(str))
@example(cursor=base64.urlsafe_b64encode(f"0001-01-01T00:00:00+14:00|{uuid.uuid4()}".encode()).decode(),
         user_id=None, agent_id=None, limit=None)
@example(cursor=None, user_id="\x00", agent_id=None, limit=None)
def test_session_list_parameters_never_answer_500(client: httpx.Client, cursor: str | None, user_id: str | None,
                                                  agent_id: str | None, limit: str | None) -> None:
    params = {name: value for name, value in (("cursor", cursor), ("userId", user_id), ("agentId", agent_id),
                                              ("limit", limit)) if value is not None}

    assert_no_server_error(client.get(SESSIONS, params=params))


BODY_ROUTES = [
    ("POST", SESSIONS, '{{"agentId": "{agent}", "userId": "u1", "metadata": {{"x": {nested}}}}}'),
    ("POST", f"{SESSIONS}/{{sid}}/messages", '{{"content": "hi", "transport": "websocket", "attachments": {nested}}}'),
    ("PATCH", f"{SESSIONS}/{{sid}}/timeout", '{{"timeoutMinutes": {nested}}}'),
    ("POST", "/api/agents", '{{"name": "deep-{uid}", "provider": "echo", "settings": {{"bio": {nested}}}}}'),
    ("PATCH", f"/api/agents/{DEFAULT_AGENT_ID}", '{{"settings": {{"style": {nested}}}}}'),
    ("POST", "/api/auth/token", '{{"userId": "u1", "scopes": {nested}}}'),
    ("POST", SESSIONS, "{nested}"),
]


@FUZZ
@given(route=st.sampled_from(BODY_ROUTES), depth=st.integers(min_value=1, max_value=3000))
@example(route=BODY_ROUTES[0], depth=1000)
@example(route=BODY_ROUTES[-1], depth=1000)
def test_deeply_nested_json_bodies_are_refused_with_400(client: httpx.Client, session_id: str,
                                                       route: tuple[str, str, str], depth: int) -> None:
    method, path, template = route
    body = template.format(agent=DEFAULT_AGENT_ID, uid=uuid.uuid4().hex[:8], nested=json_nested(depth))

    response = client.request(method, path.format(sid=session_id), content=body,
                              headers={"content-type": "application/json"})

    assert_no_server_error(response)
    if depth > MAX_JSON_DEPTH:
        assert response.status_code == 400 and response.json()["error"]["code"] == "INVALID_JSON"


@FUZZ
@given(name=text)
@example(name="chat.js\x00.html")
def test_static_file_names_never_answer_500(client: httpx.Client, name: str) -> None:
    response = client.get(f"/static/{urllib.parse.quote(name, safe='')}")

    assert response.status_code < 500, response.text


@FUZZ
@given(last_event_id=st.one_of(text, integers.map(str), st.builds("{}-{}".format, integers, integers)))
@example(last_event_id=f"{HUGE}-0")
def test_event_stream_cursors_never_answer_500(client: httpx.Client, session_id: str, last_event_id: str) -> None:
    with client.stream("GET", f"{SESSIONS}/{session_id}/events", params={"lastEventId": last_event_id}) as response:
        if response.status_code != 200:
            response.read()
            assert_no_server_error(response)
