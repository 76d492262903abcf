from __future__ import annotations

import time
from typing import Annotated, Any, cast

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, PathParameter, QueryParameter
from litestar.types import ASGIApp
from sse_starlette import EventSourceResponse

from api.debug import session_created, wants_debug
from api.dependencies import PrincipalDep, ResourcesDep, UnitOfWorkDep
from api.responses import GUARDED, WITH_BODY, errors
from api.sending import send
from api.streaming import open_event_stream
from core.clock import utcnow
from core.schemas import (
    USER_ID_PATTERN,
    AcceptedPublic,
    ConversationStats,
    EndedSessionPublic,
    Health,
    MessageCreate,
    MessagePage,
    ReplyPublic,
    ServerSentEvent,
    SessionCreate,
    SessionCreated,
    SessionPage,
    SessionPublic,
    StateHistoryPage,
    TimeoutConfigUpdate,
)
from core.services import conversation, messages, sessions
from core.services.health import check_health, is_ready
from core.validation import check_idempotency_key, parse_uuid, request_fingerprint

SessionId = Annotated[str, PathParameter(description="The session's id (a UUID)", schema_extra={"format": "uuid"})]
StatusFilter = Annotated[str | None, QueryParameter(name="status", pattern="^(active|paused|ended|expired)$")]
Limit = Annotated[str | None, QueryParameter(name="limit", description="1..100, default 50")]
Before = Annotated[str | None, QueryParameter(name="before", description="ISO 8601, epoch ms or a cursor")]
After = Annotated[str | None, QueryParameter(name="after", description="ISO 8601, epoch ms or a cursor")]
IdempotencyKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False)]
DebugHeader = Annotated[str | None, HeaderParameter(name="X-Debug", required=False)]
# Reads need the sessions:read scope (the default access), changes sessions:write.
WRITE = {"access": "write"}
LIFECYCLE_ERRORS = errors(*WITH_BODY, 404, 409, 410)


class SessionController(Controller):
    path = "/api/messaging/sessions"
    tags = ("sessions",)

    @post("/", status_code=201, summary="Create a session", opt=WRITE, responses=errors(*WITH_BODY, 404, 409, 422, 429))
    async def create(self, data: JSONBody[SessionCreate], uow: UnitOfWorkDep, resources: ResourcesDep,
                     principal: PrincipalDep, idempotency_key: IdempotencyKey = None,
                     x_debug: DebugHeader = None) -> SessionCreated:
        started, fingerprint = time.perf_counter(), request_fingerprint(data.model_dump(mode="json", exclude_none=True))
        session = await sessions.create_session(uow, resources.settings, data, utcnow(),
                                                check_idempotency_key(idempotency_key), fingerprint,
                                                owner=principal.owner, limiter=resources.limiter)
        return session_created(session, wants_debug(x_debug, principal, resources.settings), started)

    @get("/", summary="List sessions (a user token sees only its own)", responses=errors(*GUARDED))
    async def list_sessions(
        self, uow: UnitOfWorkDep, resources: ResourcesDep, principal: PrincipalDep,
        user_id: Annotated[str | None, QueryParameter(name="userId", pattern=USER_ID_PATTERN)] = None,
        agent_id: Annotated[str | None, QueryParameter(name="agentId")] = None,
        status: StatusFilter = None,
        cursor: Annotated[str | None, QueryParameter(name="cursor", max_length=512)] = None,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100)] = 50,
    ) -> SessionPage:
        agent = parse_uuid(agent_id, "agentId") if agent_id is not None else None
        return await sessions.list_sessions(uow, resources.settings, utcnow(), owner=principal.owner, user_id=user_id,
                                            agent_id=agent, status=status, cursor=cursor, limit=limit)

    @get("/health", summary="Service health", opt={"access": "health"}, responses=errors(401, 503),
         security=[{}])  # open unless PUBLIC_HEALTH=false
    async def health(self, uow: UnitOfWorkDep, resources: ResourcesDep) -> Health:
        return await check_health(uow, resources.redis, resources.settings, utcnow(),
                                  time.monotonic() - resources.started_at, resources.hub.connected)

    @get("/health/ready", summary="Readiness: 200 when the database, Redis and the event bus are up, else 503",
         description="For load balancers and orchestrators: the same body as /health, with 503 whenever the "
                     "process cannot serve a message (any component down).",
         opt={"access": "health"}, security=[{}],
         responses={**errors(401), 503: ResponseSpec(Health, description="Not ready: a component is down",
                                                     generate_examples=False)})
    async def ready(self, uow: UnitOfWorkDep, resources: ResourcesDep) -> Response[Health]:
        health = await check_health(uow, resources.redis, resources.settings, utcnow(),
                                    time.monotonic() - resources.started_at, resources.hub.connected)
        return Response(health, status_code=200 if is_ready(health) else 503)

    @get("/stats", summary="Conversation state aggregates for dashboards (a user token: its own sessions)",
         description="Sessions counted by current stage, sentiment and engagement, with average agent confidence "
                     "and sentiment score. `from` (inclusive) and `to` (exclusive) bound createdAt.",
         responses=errors(*GUARDED))
    async def stats(
        self, uow: UnitOfWorkDep, principal: PrincipalDep,
        agent_id: Annotated[str | None, QueryParameter(name="agentId")] = None,
        created_from: Annotated[str | None, QueryParameter(name="from", description="ISO 8601 or epoch ms")] = None,
        created_to: Annotated[str | None, QueryParameter(name="to", description="ISO 8601 or epoch ms")] = None,
        status: StatusFilter = None,
    ) -> ConversationStats:
        start, end = conversation.parse_time_range(created_from, created_to)
        agent = parse_uuid(agent_id, "agentId") if agent_id is not None else None
        return await conversation.conversation_stats(uow, utcnow(), owner=principal.owner, agent_id=agent,
                                                     created_from=start, created_to=end, status=status)

    @get("/{session_id:str}", summary="Get a session", responses=errors(*GUARDED, 404))
    async def get_session(self, session_id: SessionId, uow: UnitOfWorkDep, resources: ResourcesDep,
                          principal: PrincipalDep) -> SessionPublic:
        return await sessions.get_session(uow, resources.settings, parse_uuid(session_id, "sessionId"), utcnow(),
                                          owner=principal.owner)

    @delete("/{session_id:str}", status_code=200, summary="End (archive) or purge a session", opt=WRITE,
            responses=errors(*GUARDED, 404))
    async def end(self, session_id: SessionId, uow: UnitOfWorkDep, resources: ResourcesDep, principal: PrincipalDep,
                  purge: Annotated[bool, QueryParameter(name="purge")] = False) -> EndedSessionPublic:
        return await sessions.end_session(uow, resources.settings, parse_uuid(session_id, "sessionId"), utcnow(),
                                          purge, owner=principal.owner)

    @post("/{session_id:str}/messages", summary="Send a message and get the agent's reply", opt=WRITE,
          description="`transport: \"sse\"` (or `mode: \"stream\"`, or `Accept: text/event-stream`) answers "
                      "with an event stream instead; see docs/api.md, \"Streaming\".",
          responses={201: ResponseSpec(ReplyPublic, description="The agent's reply", generate_examples=False),
                     202: ResponseSpec(AcceptedPublic, description="Accepted; the reply follows on /events",
                                       generate_examples=False),
                     200: ResponseSpec(ServerSentEvent, media_type="text/event-stream", generate_examples=False,
                                       description="transport sse: the reply as server-sent events (each one "
                                                   "is described by this schema)"),
                     **errors(*WITH_BODY, 404, 409, 410, 422, 429, 502)})
    async def send_message(self, session_id: SessionId, data: JSONBody[MessageCreate], uow: UnitOfWorkDep,
                           resources: ResourcesDep, request: Request[Any, Any, Any], principal: PrincipalDep,
                           idempotency_key: IdempotencyKey = None, x_debug: DebugHeader = None) -> ASGIApp:
        # Litestar serves the Response or the event stream `send` returns; `ASGIApp` keeps the schema's own.
        return cast("ASGIApp", await send(uow, resources, parse_uuid(session_id, "sessionId"), data,
                                          idempotency_key, debug=wants_debug(x_debug, principal, resources.settings),
                                          accept=request.headers.get("accept"), owner=principal.owner))

    # An endless stream: kept out of the OpenAPI schema (documented in docs/api.md).
    @get("/{session_id:str}/events", include_in_schema=False)
    async def events(self, session_id: FromPath[str], uow: UnitOfWorkDep, resources: ResourcesDep,
                     request: Request[Any, Any, Any], principal: PrincipalDep,
                     last_event_id: Annotated[str | None, QueryParameter(name="lastEventId", max_length=64)] = None,
                     ) -> EventSourceResponse:
        sid = parse_uuid(session_id, "sessionId")
        await uow.load_session(sid, owner=principal.owner)  # another user's session: 404, as everywhere
        await uow.commit()  # a read: give the connection (and SQLite's read lock) back before the endless stream
        return await open_event_stream(resources, principal, sid, request.headers.get("last-event-id") or last_event_id)

    @get("/{session_id:str}/messages", summary="Message history, newest first", responses=errors(*GUARDED, 404))
    async def history(self, session_id: SessionId, uow: UnitOfWorkDep, resources: ResourcesDep, principal: PrincipalDep,
                      limit: Limit = None, before: Before = None, after: After = None) -> MessagePage:
        return await messages.history(uow, resources.settings, parse_uuid(session_id, "sessionId"),
                                      owner=principal.owner, limit=limit, before=before, after=after)

    @get("/{session_id:str}/state/history", summary="The conversation state after each exchange, newest first",
         responses=errors(*GUARDED, 404))
    async def state_history(self, session_id: SessionId, uow: UnitOfWorkDep, resources: ResourcesDep,
                            principal: PrincipalDep, limit: Limit = None, before: Before = None,
                            after: After = None) -> StateHistoryPage:
        return await conversation.state_history(uow, resources.settings, parse_uuid(session_id, "sessionId"),
                                                owner=principal.owner, limit=limit, before=before, after=after)

    @post("/{session_id:str}/pause", status_code=200, summary="Pause a session", opt=WRITE,
          responses=LIFECYCLE_ERRORS)
    async def pause(self, session_id: SessionId, uow: UnitOfWorkDep, resources: ResourcesDep,
                    principal: PrincipalDep) -> SessionPublic:
        return await sessions.pause_session(uow, resources.settings, parse_uuid(session_id, "sessionId"), utcnow(),
                                            owner=principal.owner)

    @post("/{session_id:str}/resume", status_code=200, summary="Resume a paused session", opt=WRITE,
          responses=LIFECYCLE_ERRORS)
    async def resume(self, session_id: SessionId, uow: UnitOfWorkDep, resources: ResourcesDep,
                     principal: PrincipalDep) -> SessionPublic:
        return await sessions.resume_session(uow, resources.settings, parse_uuid(session_id, "sessionId"), utcnow(),
                                             owner=principal.owner)

    @post("/{session_id:str}/renew", status_code=200, summary="Renew a session's timeout", opt=WRITE,
          responses=LIFECYCLE_ERRORS)
    async def renew(self, session_id: SessionId, uow: UnitOfWorkDep, resources: ResourcesDep,
                    principal: PrincipalDep) -> SessionPublic:
        return await sessions.renew_session(uow, resources.settings, parse_uuid(session_id, "sessionId"), utcnow(),
                                            owner=principal.owner)

    @post("/{session_id:str}/heartbeat", status_code=200, summary="Record activity without a message", opt=WRITE,
          responses=LIFECYCLE_ERRORS)
    async def heartbeat(self, session_id: SessionId, uow: UnitOfWorkDep, resources: ResourcesDep,
                        principal: PrincipalDep) -> SessionPublic:
        return await sessions.heartbeat(uow, resources.settings, parse_uuid(session_id, "sessionId"), utcnow(),
                                        owner=principal.owner)

    @patch("/{session_id:str}/timeout", summary="Change the timeout config (merged with the current one)", opt=WRITE,
           responses=LIFECYCLE_ERRORS)
    async def update_timeout(self, session_id: SessionId, data: JSONBody[TimeoutConfigUpdate], uow: UnitOfWorkDep,
                             resources: ResourcesDep, principal: PrincipalDep) -> SessionPublic:
        return await sessions.update_timeout(uow, resources.settings, parse_uuid(session_id, "sessionId"), utcnow(),
                                             data, owner=principal.owner)
