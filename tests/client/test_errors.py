"""Error bodies become typed exceptions (pure mapping), each code as the table of codes says."""

from __future__ import annotations

from agent_sessions_client import (
    AgentFailed,
    AgentInUse,
    ApiError,
    InsufficientScope,
    MessageSuperseded,
    RateLimited,
    ReplyTimeout,
    SessionBusy,
    SessionExpired,
    TokenExpired,
    TokenMintingUnavailable,
    Unauthorized,
)
from agent_sessions_client.codes import ERROR_CODES
from agent_sessions_client.errors import BY_STATUS, error_for


def body(code: str, message: str = "nope") -> dict:
    return {"error": {"code": code, "message": message, "details": {"sessionId": "s"}}, "message": message}


def test_codes_map_to_their_exception_with_details() -> None:
    error = error_for(410, body("SESSION_EXPIRED", "the session expired"))

    assert isinstance(error, SessionExpired)
    assert error.code == "SESSION_EXPIRED" and error.message == "the session expired"
    assert error.details == {"sessionId": "s"} and error.status_code == 410


def test_unknown_codes_fall_back_to_the_status_and_keep_retry_after() -> None:
    limited = error_for(429, body("SOMETHING_NEW"), retry_after=2)
    unauthorized = error_for(401, {"message": "missing key"})
    odd = error_for(418, "teapot")

    assert isinstance(limited, RateLimited) and limited.retry_after == 2
    assert isinstance(unauthorized, Unauthorized) and unauthorized.message == "missing key"
    assert type(odd) is ApiError and odd.message == "teapot"


def test_stream_error_events_map_by_code() -> None:
    assert isinstance(error_for(502, {"error": {"code": "REPLY_TIMEOUT", "message": "no reply yet"}}), ReplyTimeout)
    assert isinstance(error_for(502, {"error": {"code": "AGENT_FAILED", "message": "down"}}), AgentFailed)


def test_every_code_of_the_table_raises_its_exception_under_its_status() -> None:
    for code, (status, exception) in ERROR_CODES.items():
        error = error_for(status or 502, body(code))

        assert type(error).__name__ == exception and error.code == code
        if status in BY_STATUS:
            assert isinstance(error, BY_STATUS[status]), code


def test_codes_the_table_gained_have_their_own_exceptions() -> None:
    assert isinstance(error_for(409, body("SESSION_BUSY")), SessionBusy)
    assert isinstance(error_for(409, body("AGENT_IN_USE")), AgentInUse)
    assert isinstance(error_for(409, body("MESSAGE_SUPERSEDED")), MessageSuperseded)
    assert isinstance(error_for(401, body("TOKEN_EXPIRED")), TokenExpired)
    assert isinstance(error_for(403, body("INSUFFICIENT_SCOPE")), InsufficientScope)
    assert isinstance(error_for(501, body("TOKEN_MINTING_UNAVAILABLE")), TokenMintingUnavailable)
