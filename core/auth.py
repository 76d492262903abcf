"""Who is calling: the server key (admin), a user's bearer token (JWT), or nobody when auth is off.

`authenticate()` is the one place credentials are checked; the HTTP guard and the socket.io connect
handler both call it. What a principal may see is enforced by the services (`owner=` on every function
that loads a session), so another user's session answers 404 wherever it is asked for.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import jwt

from core.errors import Forbidden, InsufficientScope, InvalidInput, TokenExpired, TokenMintingUnavailable, Unauthorized
from core.schemas import USER_ID_PATTERN
from core.settings import Settings

READ = "sessions:read"
WRITE = "sessions:write"
SCOPES = (READ, WRITE)
_USER_ID = re.compile(USER_ID_PATTERN)


@dataclass(frozen=True)
class Principal:
    role: Literal["admin", "user"]
    via: Literal["open", "server_key", "token"]
    user_id: str | None = None
    scopes: frozenset[str] = frozenset(SCOPES)

    @property
    def owner(self) -> str | None:
        """The only user whose sessions this principal may touch; None means every user's (admin)."""
        return self.user_id if self.role == "user" else None

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise InsufficientScope(f"this token lacks the {scope!r} scope", required=scope,
                                    granted=sorted(self.scopes))

    def require_admin(self) -> None:
        if self.role != "admin":
            raise Forbidden("only the server key (X-API-KEY) may do this")

    def may_debug(self, settings: Settings) -> bool:
        """`X-Debug` details reveal internals: the server key may see them, anyone only outside production."""
        return self.via == "server_key" or settings.debug_open


# Auth off (no key configured): every caller is an unauthenticated admin, as in the embedded dev setup.
OPEN = Principal(role="admin", via="open")
SERVER = Principal(role="admin", via="server_key")


def _normalized(credentials: Mapping[str, Any]) -> dict[str, str]:
    return {str(name).lower().replace("-", "").replace("_", ""): value for name, value in credentials.items()
            if isinstance(value, str)}


def authenticate(credentials: Mapping[str, Any], settings: Settings) -> Principal:
    """The principal for a request's headers or a socket.io `auth` dict (names are matched case- and
    separator-insensitively): `X-API-KEY` / `apiKey` = server key; `Authorization: Bearer <jwt>` or
    `token` = a user token. Raises `Unauthorized` (401) when auth is on and the credentials are wrong."""
    if not settings.auth_enabled:
        return OPEN
    given = _normalized(credentials)
    key = given.get("xapikey", given.get("apikey"))
    if key is not None:
        expected = settings.api_key.get_secret_value() if settings.api_key else None
        # Constant time, so response timing does not reveal how much of a guessed key was right.
        if expected is None or not hmac.compare_digest(key.encode(), expected.encode()):
            raise Unauthorized("invalid API key")
        return SERVER
    token = given.get("token")
    authorization = given.get("authorization")
    if authorization is not None:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        token = value.strip()
    if token is None:
        raise Unauthorized("authentication required: send X-API-KEY or Authorization: Bearer <token>")
    return _user_from_token(token, settings)


def _user_from_token(token: str, settings: Settings) -> Principal:
    key = settings.jwt_verification_key
    if key is None:
        raise Unauthorized("bearer tokens are not accepted by this server (no JWT key configured)")
    try:
        claims = jwt.decode(token, key, algorithms=[settings.jwt_algorithm], leeway=settings.jwt_leeway_seconds,
                            options={"require": ["exp", "sub"]})
    except jwt.ExpiredSignatureError:
        raise TokenExpired("the token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    user_id = claims["sub"]
    if not isinstance(user_id, str) or not _USER_ID.match(user_id):
        raise Unauthorized("invalid token: `sub` is not a valid userId")
    return Principal(role="user", via="token", user_id=user_id, scopes=_scopes_of(claims.get("scope")))


def _scopes_of(claim: Any) -> frozenset[str]:
    """OAuth style: a space-separated string (or a list). No claim grants both scopes."""
    if claim is None:
        return frozenset(SCOPES)
    names = claim.split() if isinstance(claim, str) else claim if isinstance(claim, list) else []
    return frozenset(name for name in names if name in SCOPES)


@dataclass(frozen=True)
class MintedToken:
    token: str
    user_id: str
    scopes: list[str]
    expires_at: datetime
    expires_in: int


def mint_token(settings: Settings, user_id: str, scopes: list[str] | None, ttl_seconds: int | None,
               now: datetime) -> MintedToken:
    key = settings.jwt_signing_key
    if key is None:
        raise TokenMintingUnavailable("this server cannot sign tokens: set JWT_SECRET (HS256) or JWT_PRIVATE_KEY")
    ttl = settings.token_ttl_seconds if ttl_seconds is None else ttl_seconds
    if not 1 <= ttl <= settings.token_ttl_max_seconds:
        raise InvalidInput(f"ttlSeconds must be between 1 and {settings.token_ttl_max_seconds}",
                           field="ttlSeconds", value=ttl)
    granted = sorted(set(SCOPES if scopes is None else scopes))
    expires_at = now + timedelta(seconds=ttl)
    claims = {"sub": user_id, "scope": " ".join(granted), "iat": now, "exp": expires_at}
    token = jwt.encode(claims, key, algorithm=settings.jwt_algorithm)
    return MintedToken(token=token, user_id=user_id, scopes=granted, expires_at=expires_at, expires_in=ttl)


def environ_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The HTTP headers of a WSGI/ASGI-style environ (what python-socketio hands its `connect` handler)."""
    return {name.removeprefix("HTTP_"): value for name, value in environ.items()
            if name.startswith("HTTP_") and isinstance(value, str)}
