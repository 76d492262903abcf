"""`X-Debug: true`: how a request was served (ids, timings), for whoever may see it (`Principal.may_debug`)."""

from __future__ import annotations

import time

from core import logs
from core.auth import Principal
from core.schemas import SessionCreated, SessionPublic
from core.settings import Settings


def wants_debug(header: str | None, principal: Principal, settings: Settings) -> bool:
    return (header or "").lower() == "true" and principal.may_debug(settings)


def session_created(session: SessionPublic, debug: bool, started: float) -> SessionCreated:
    """The new session, with `debug` when asked for (the guide's session-creation example sends X-Debug)."""
    details = {"sessionId": str(session.session_id), "agentId": str(session.agent_id),
               "requestId": logs.current_request_id(),
               "timings": {"createMs": round((time.perf_counter() - started) * 1000, 2)}} if debug else None
    return SessionCreated(**session.model_dump(), debug=details)
