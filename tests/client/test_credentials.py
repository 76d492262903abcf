"""API key and user token options become the headers the server reads."""

from __future__ import annotations

import httpx

from agent_sessions_client import SessionsClient


def test_api_key_and_token_are_sent_on_every_request() -> None:
    seen: list[httpx.Headers] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json={"agents": []})

    with SessionsClient("http://server.test", api_key="server-key", token="user-jwt",
                        transport=httpx.MockTransport(server)) as client:
        client.list_agents()

    assert seen[0]["X-API-KEY"] == "server-key"
    assert seen[0]["Authorization"] == "Bearer user-jwt"
