"""authenticate() and mint_token(): the one place credentials are checked (HTTP guard and socket.io alike)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from core.auth import OPEN, READ, WRITE, authenticate, environ_headers, mint_token
from core.errors import InsufficientScope, InvalidInput, TokenExpired, TokenMintingUnavailable, Unauthorized
from core.settings import Settings

SECRET = "unit-test-secret-0123456789abcdef-0123456789"


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def hs_token(claims: dict[str, Any]) -> str:
    return jwt.encode({"exp": int(time.time()) + 60, **claims}, SECRET, algorithm="HS256")


def test_without_any_key_configured_everyone_is_the_open_admin() -> None:
    assert authenticate({"X-API-KEY": "anything"}, settings()) == OPEN
    assert OPEN.owner is None


def test_blank_keys_leave_authentication_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_SESSIONS_API_KEY", "")
    monkeypatch.setenv("JWT_SECRET", "  ")

    assert not settings().auth_enabled


def test_server_key_is_admin_in_header_or_socketio_auth_form() -> None:
    configured = settings(AGENT_SESSIONS_API_KEY="k3y")

    for credentials in ({"X-API-KEY": "k3y"}, {"x-api-key": "k3y"}, {"apiKey": "k3y"}, {"api_key": "k3y"}):
        principal = authenticate(credentials, configured)
        assert principal.role == "admin" and principal.via == "server_key" and principal.owner is None


def test_elizaos_variable_name_sets_the_server_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELIZA_SERVER_AUTH_TOKEN", "from-eliza")

    assert authenticate({"X-API-KEY": "from-eliza"}, settings()).via == "server_key"


@pytest.mark.parametrize("credentials", [{}, {"X-API-KEY": "k3y "}, {"X-API-KEY": "é"}, {"Authorization": "k3y"}])
def test_missing_or_wrong_credentials_are_unauthorized(credentials: dict[str, str]) -> None:
    with pytest.raises(Unauthorized):
        authenticate(credentials, settings(AGENT_SESSIONS_API_KEY="k3y", jwt_secret=SECRET))


def test_user_token_gives_its_user_and_scopes_from_header_or_socketio_auth() -> None:
    configured = settings(jwt_secret=SECRET)
    token = hs_token({"sub": "alice@example.com", "scope": "sessions:read"})

    for credentials in ({"Authorization": f"Bearer {token}"}, {"token": token}):
        principal = authenticate(credentials, configured)
        assert principal.role == "user" and principal.owner == "alice@example.com"
        assert principal.scopes == {READ}
        with pytest.raises(InsufficientScope):
            principal.require_scope(WRITE)


@pytest.mark.parametrize(("scope", "granted"), [(None, {READ, WRITE}), ("sessions:write", {WRITE}),
                                                (["sessions:read", "admin"], {READ}), ("openid", set())])
def test_scope_claim_forms(scope: Any, granted: set[str]) -> None:
    claims = {"sub": "bob"} if scope is None else {"sub": "bob", "scope": scope}

    assert authenticate({"token": hs_token(claims)}, settings(jwt_secret=SECRET)).scopes == granted


@pytest.mark.parametrize(("claims", "error"), [
    ({"sub": "bob", "exp": int(time.time()) - 120}, TokenExpired),
    ({"sub": "bob", "exp": None}, Unauthorized),  # exp is required
    ({"exp": int(time.time()) + 60}, Unauthorized),  # sub is required
    ({"sub": "not a valid/user id", "exp": int(time.time()) + 60}, Unauthorized),
])
def test_tokens_without_valid_claims_are_refused(claims: dict[str, Any], error: type[Exception]) -> None:
    token = jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, algorithm="HS256")

    with pytest.raises(error):
        authenticate({"token": token}, settings(jwt_secret=SECRET))


def test_an_hs256_token_cannot_pass_as_rs256_with_the_public_key_as_secret() -> None:
    """The classic algorithm-confusion attack: only the configured algorithm is accepted."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    configured = settings(jwt_algorithm="RS256", jwt_public_key=public_pem)
    genuine = jwt.encode({"sub": "carol", "exp": int(time.time()) + 60}, private, algorithm="RS256")

    assert authenticate({"token": genuine}, configured).owner == "carol"
    with pytest.raises(Unauthorized):
        authenticate({"token": hs_token({"sub": "carol"})}, configured)


def test_es256_keys_mint_and_verify() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    configured = settings(jwt_algorithm="ES256", jwt_public_key=public_pem, jwt_private_key=private_pem)

    minted = mint_token(configured, "dave", [WRITE], 60, datetime.now(UTC))

    principal = authenticate({"Authorization": f"Bearer {minted.token}"}, configured)
    assert principal.owner == "dave" and principal.scopes == {WRITE}


def test_minting_needs_a_signing_key_and_a_lifetime_within_the_maximum() -> None:
    now = datetime.now(UTC)
    with pytest.raises(TokenMintingUnavailable):
        mint_token(settings(AGENT_SESSIONS_API_KEY="k3y"), "erin", None, None, now)
    with pytest.raises(InvalidInput):
        mint_token(settings(jwt_secret=SECRET, token_ttl_max_seconds=600), "erin", None, 601, now)

    minted = mint_token(settings(jwt_secret=SECRET, token_ttl_seconds=300), "erin", None, None, now)
    assert minted.expires_in == 300 and minted.scopes == [READ, WRITE]


def test_environ_headers_feed_authenticate_for_socketio_connects() -> None:
    environ = {"HTTP_X_API_KEY": "k3y", "REMOTE_ADDR": "127.0.0.1", "wsgi.input": object()}

    assert authenticate(environ_headers(environ), settings(AGENT_SESSIONS_API_KEY="k3y")).via == "server_key"


AUDIENCE, ISSUER = "agent-sessions", "https://id.example.com/"


@pytest.mark.parametrize(("claims", "accepted"), [
    ({"aud": AUDIENCE, "iss": ISSUER}, True),
    ({"aud": ["other-api", AUDIENCE], "iss": ISSUER}, True),
    ({"aud": "other-api", "iss": ISSUER}, False),
    ({"iss": ISSUER}, False),  # no audience: meant for any service, so not for this one
    ({"aud": AUDIENCE, "iss": "https://evil.example/"}, False),
    ({"aud": AUDIENCE}, False),
])
def test_audience_and_issuer_are_required_and_checked_when_configured(claims: dict[str, Any], accepted: bool) -> None:
    configured = settings(jwt_secret=SECRET, jwt_audience=AUDIENCE, jwt_issuer=ISSUER)
    token = hs_token({"sub": "frank", **claims})

    if accepted:
        assert authenticate({"token": token}, configured).owner == "frank"
    else:
        with pytest.raises(Unauthorized):
            authenticate({"token": token}, configured)


def test_minted_tokens_carry_the_configured_audience_and_issuer() -> None:
    configured = settings(jwt_secret=SECRET, jwt_audience=AUDIENCE, jwt_issuer=ISSUER)

    minted = mint_token(configured, "gina", None, 60, datetime.now(UTC))

    assert authenticate({"token": minted.token}, configured).owner == "gina"


@pytest.mark.parametrize("claims", [
    {"exp": int(time.time()) + 30 * 86400},  # no iat: counted from now
    {"iat": int(time.time()) - 60, "exp": int(time.time()) + 2 * 86400},
])
def test_a_token_living_longer_than_the_maximum_is_refused(claims: dict[str, Any]) -> None:
    token = jwt.encode({"sub": "henry", **claims}, SECRET, algorithm="HS256")

    with pytest.raises(Unauthorized, match="JWT_MAX_LIFETIME_SECONDS"):
        authenticate({"token": token}, settings(jwt_secret=SECRET, jwt_max_lifetime_seconds=86400))


def test_a_token_principal_knows_when_it_stops_being_valid() -> None:
    expires = int(time.time()) + 60
    principal = authenticate({"token": hs_token({"sub": "ida", "exp": expires})},
                             settings(jwt_secret=SECRET, jwt_leeway_seconds=5))

    assert principal.valid_until == datetime.fromtimestamp(expires + 5, UTC)
    principal.ensure_current(datetime.fromtimestamp(expires + 4, UTC))
    with pytest.raises(TokenExpired):
        principal.ensure_current(datetime.fromtimestamp(expires + 5, UTC))
    assert authenticate({"X-API-KEY": "k3y"}, settings(AGENT_SESSIONS_API_KEY="k3y")).seconds_left(
        datetime.now(UTC)) is None
