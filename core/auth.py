"""Who is calling: the server key (admin), a user's bearer token (JWT), or nobody when auth is off.

`authenticate()` is the one place credentials are checked; the HTTP guard and the socket.io connect
handler both call it. What a principal may see is enforced by the services (`owner=` on every function
that loads a session), so another user's session answers 404 wherever it is asked for.
"""

from __future__ import annotations

import hmac
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt

from core.clock import utcnow
from core.errors import (
    CredentialsMissing,
    Forbidden,
    InsufficientScope,
    InvalidInput,
    TokenExpired,
    TokenMintingUnavailable,
    Unauthorized,
)
from core.schemas import USER_ID_PATTERN, Scope
from core.settings import Settings

READ: Scope = "sessions:read"
WRITE: Scope = "sessions:write"
SCOPES = (READ, WRITE)
_USER_ID = re.compile(USER_ID_PATTERN)


@dataclass(frozen=True)
class Principal:
    role: Literal["admin", "user"]
    via: Literal["open", "server_key", "token"]
    user_id: str | None = None
    scopes: frozenset[str] = frozenset(SCOPES)
    # When a token stops being accepted (its `exp` plus the leeway); None for the server key and open access.
    valid_until: datetime | None = None

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

    def seconds_left(self, now: datetime) -> float | None:
        """How long these credentials stay valid; None: as long as the server runs (server key, open access)."""
        return None if self.valid_until is None else (self.valid_until - now).total_seconds()

    def ensure_current(self, now: datetime) -> None:
        """Streams and socket.io hold a principal past the request that authenticated it: re-check it."""
        left = self.seconds_left(now)
        if left is not None and left <= 0:
            raise TokenExpired("the token has expired")

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
        raise CredentialsMissing("authentication required: send X-API-KEY or Authorization: Bearer <token>")
    return _user_from_token(token, settings)


def _user_from_token(token: str, settings: Settings) -> Principal:
    key = settings.jwt_verification_key
    if key is None:
        raise Unauthorized("bearer tokens are not accepted by this server (no JWT key configured)")
    required = ["exp", "sub", *(["aud"] if settings.jwt_audience else []), *(["iss"] if settings.jwt_issuer else [])]
    try:
        # Without JWT_AUDIENCE, PyJWT refuses any token that names an audience: it was meant for someone else.
        claims = jwt.decode(token, key, algorithms=[settings.jwt_algorithm], leeway=settings.jwt_leeway_seconds,
                            audience=settings.jwt_audience, issuer=settings.jwt_issuer, options={"require": required})
    except jwt.ExpiredSignatureError:
        raise TokenExpired("the token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    user_id = claims["sub"]
    if not isinstance(user_id, str) or not _USER_ID.match(user_id):
        raise Unauthorized("invalid token: `sub` is not a valid userId")
    expires = datetime.fromtimestamp(float(claims["exp"]), UTC)
    _check_lifetime(claims, expires, settings)
    return Principal(role="user", via="token", user_id=user_id, scopes=_scopes_of(claims.get("scope")),
                     valid_until=expires + timedelta(seconds=settings.jwt_leeway_seconds))


def _check_lifetime(claims: dict[str, Any], expires: datetime, settings: Settings) -> None:
    """A token from an identity provider may not live longer than JWT_MAX_LIFETIME_SECONDS (from its `iat`,
    or from now when it has none): a stolen long-lived token would otherwise stay good for years."""
    issued = claims.get("iat")
    start = datetime.fromtimestamp(float(issued), UTC) if isinstance(issued, int | float) else utcnow()
    lifetime = (expires - start).total_seconds()
    if lifetime > settings.jwt_max_lifetime_seconds:
        raise Unauthorized(f"invalid token: it is valid for {lifetime:.0f} s, longer than the "
                           f"{settings.jwt_max_lifetime_seconds} s this server accepts (JWT_MAX_LIFETIME_SECONDS)")


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
    scopes: list[Scope]
    expires_at: datetime
    expires_in: int


def mint_token(settings: Settings, user_id: str, scopes: Sequence[Scope] | None, ttl_seconds: int | None,
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
    claims: dict[str, Any] = {"sub": user_id, "scope": " ".join(granted), "iat": now, "exp": expires_at}
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    token = jwt.encode(claims, key, algorithm=settings.jwt_algorithm)
    return MintedToken(token=token, user_id=user_id, scopes=granted, expires_at=expires_at, expires_in=ttl)


def environ_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The HTTP headers of a WSGI/ASGI-style environ (what python-socketio hands its `connect` handler)."""
    return {name.removeprefix("HTTP_"): value for name, value in environ.items()
            if name.startswith("HTTP_") and isinstance(value, str)}


# Secrets: the server key and an HS256 secret are guessed offline or online if short or repetitive.
SECRET_MIN_CHARS = 32
SECRET_MIN_BITS = 128
MAKE_A_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
OPEN_ENVIRONMENTS = ("dev", "test")  # where the API may run without any key unless told otherwise


class InsecureSettings(Exception):
    """Settings the API refuses to serve with (a missing or weak secret); the message says how to fix them."""


def secret_weakness(value: str) -> str | None:
    """Why a secret is too weak, or None. Strong: at least 32 characters carrying at least 128 bits by the
    Shannon entropy of its characters (length x bits per character), which refuses `secret`, a short
    password, or a long repetition of a few characters; what `secrets.token_urlsafe(32)` makes passes."""
    if len(value) < SECRET_MIN_CHARS:
        return f"it has {len(value)} characters; at least {SECRET_MIN_CHARS} are needed"
    total = len(value)
    bits = total * sum(n / total * math.log2(total / n) for n in Counter(value).values())
    if bits < SECRET_MIN_BITS:
        return f"it is too repetitive (about {bits:.0f} bits; at least {SECRET_MIN_BITS} are needed)"
    return None


def check_serving_security(settings: Settings) -> str | None:
    """Refuse (InsecureSettings) to serve the API with a weak secret, or open outside dev/test unless
    ALLOW_UNAUTHENTICATED says so; returns the warning to log loudly when it runs open anyway."""
    secrets = {"AGENT_SESSIONS_API_KEY": settings.api_key,
               "JWT_SECRET": settings.jwt_secret if settings.jwt_algorithm == "HS256" else None}
    for name, secret in secrets.items():
        weakness = secret_weakness(secret.get_secret_value()) if secret is not None else None
        if weakness:
            raise InsecureSettings(f"{name} is too weak: {weakness}. Make one with: {MAKE_A_SECRET}")
    if settings.auth_enabled:
        return None
    if settings.allow_unauthenticated:
        return ("AUTHENTICATION IS OFF (ALLOW_UNAUTHENTICATED=true): anyone who can reach this API is its admin. "
                f"Set AGENT_SESSIONS_API_KEY (make one with: {MAKE_A_SECRET}) for any deployment others can reach")
    if settings.environment in OPEN_ENVIRONMENTS:
        return (f"authentication is off (no AGENT_SESSIONS_API_KEY or JWT key; ENVIRONMENT={settings.environment}): "
                "every caller is the admin")
    raise InsecureSettings(
        f"refusing to serve the API without authentication in ENVIRONMENT={settings.environment}: set "
        f"AGENT_SESSIONS_API_KEY (make one with: {MAKE_A_SECRET}) and/or JWT_SECRET, or ALLOW_UNAUTHENTICATED=true "
        "to run it open on purpose")
