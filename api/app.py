from __future__ import annotations

import logging

import socketio
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, Reference, SecurityScheme
from litestar.plugins.pydantic import PydanticPlugin
from litestar.types import ASGIApp

from api.auth import authorize, provide_principal
from api.errors import EXCEPTION_HANDLERS
from api.headers import outside_litestar, security_headers
from api.metrics import ApiMetrics
from api.observability import RequestContextMiddleware
from api.openapi import complete_strict_schemas
from api.realtime import Realtime
from api.requests import ApiRequest
from api.resources import lifespan, provide_resources, provide_uow
from api.routes.agents import AgentController
from api.routes.auth import AuthController
from api.routes.metrics import serve_metrics
from api.routes.page import chat_page, static_files
from api.routes.server import ServerController
from api.routes.sessions import SessionController
from core.auth import InsecureSettings, check_serving_security
from core.logs import configure_logging
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)
DOCS_PATH = "/schema"
SECURITY_SCHEMES: dict[str, SecurityScheme | Reference] = {
    "serverKey": SecurityScheme(type="apiKey", name="X-API-KEY", security_scheme_in="header",
                                description="The server key (AGENT_SESSIONS_API_KEY): admin access"),
    "userToken": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT",
                                description="A user's token (`sub` = userId; scopes sessions:read, sessions:write)"),
}


def create_app(settings: Settings | None = None, realtime: Realtime | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings)
    running_open = check_serving_security(settings)  # raises InsecureSettings: no open or guessable production API
    if running_open:
        log.log(logging.CRITICAL if settings.allow_unauthenticated else logging.WARNING, running_open)
    metrics = ApiMetrics()
    app = Litestar(
        route_handlers=[SessionController, AgentController, ServerController, AuthController, serve_metrics, chat_page,
                        static_files],
        lifespan=[lifespan(settings, metrics), *([realtime.lifespan] if realtime else [])],
        guards=[authorize],
        dependencies={"resources": Provide(provide_resources, sync_to_thread=False), "uow": Provide(provide_uow),
                      "principal": Provide(provide_principal, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[security_headers(DOCS_PATH)],
        middleware=[RequestContextMiddleware(metrics)],
        logging_config=None,  # ours (core.logs), not Litestar's default handlers
        plugins=[PydanticPlugin(prefer_alias=True)],
        openapi_config=OpenAPIConfig(
            title="Agent Sessions", version="0.1.0", path=DOCS_PATH,
            description="Persistent, stateful chat sessions with AI agents. When the server has a key configured, "
                        "send it as X-API-KEY, or a user's bearer token as Authorization.",
            components=Components(security_schemes=SECURITY_SCHEMES),
            security=[{"serverKey": []}, {"userToken": []}]),
        cors_config=CORSConfig(allow_origins=settings.cors_origins, expose_headers=["Retry-After"]),
        request_max_body_size=settings.request_body_max_bytes,
        request_class=ApiRequest,  # JSON bodies of bounded depth
    )
    complete_strict_schemas(app)
    return app


def create_server(settings: Settings | None = None) -> ASGIApp:
    """What the server runs: the HTTP API with socket.io (`/socket.io/`) on the same port."""
    settings = settings or get_settings()
    realtime = Realtime(settings)
    try:
        app = create_app(settings, realtime)
    except InsecureSettings as refusal:
        log.critical("refusing to start: %s", refusal)
        raise SystemExit(2) from None  # what the operator must fix is the line above, not a traceback
    return outside_litestar(socketio.ASGIApp(realtime.sio, other_asgi_app=app), DOCS_PATH)
