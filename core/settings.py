"""Settings from the environment (and a `.env` file), read once per process."""

from __future__ import annotations

import json
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # Where data lives. SQLite in the working directory is the embedded default.
    database_url: str = "sqlite:///agent-sessions.db"
    # None means "start an embedded Redis" (only `agent-sessions dev` does that).
    redis_url: str | None = None
    # Namespace of every Redis key and channel, so several deployments (or test runs) can share a server.
    redis_prefix: str = "as:"
    celery_queue: str = "agent-sessions"
    # "inline": the API process runs the agent itself, without queue or worker (the benchmarks' baseline).
    processing: Literal["queue", "inline"] = "queue"

    # Character files (*.json, *.yaml) upserted by name into the agents table by `agent-sessions migrate`.
    agents_dir: Path | None = None

    host: str = "127.0.0.1"
    port: int = 3000
    environment: str = "production"  # `dev` (set by `agent-sessions dev`), `test` or `production`
    # Logs: JSON lines, or readable console output; "auto" picks console when ENVIRONMENT is dev.
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    # A JSON list or a comma-separated list of origins allowed to call the API from a browser (every list setting
    # takes either form).
    cors_origins: Annotated[list[str], NoDecode] = ["http://localhost:3000", "http://127.0.0.1:3000"]

    # Authentication is on when a server key or a token key is configured, off otherwise (dev default).
    # The server key (header X-API-KEY) acts as admin; ElizaOS deployments already set ELIZA_SERVER_AUTH_TOKEN.
    api_key: SecretStr | None = Field(None, validation_alias=AliasChoices(
        "AGENT_SESSIONS_API_KEY", "ELIZA_SERVER_AUTH_TOKEN"))
    # Per-user bearer tokens (JWT, `sub` = userId): HS256 with a shared secret, or RS256/ES256 verified with a
    # PEM public key (a private key, if given, lets `POST /api/auth/token` mint them).
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = "HS256"
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_private_key: SecretStr | None = None
    jwt_leeway_seconds: int = Field(30, ge=0)
    token_ttl_seconds: int = Field(900, ge=1)  # lifetime of a minted token unless the request asks less/more
    token_ttl_max_seconds: int = Field(86400, ge=1)
    # With authentication on, these stay reachable without credentials (load balancers, API browsers).
    public_health: bool = True
    public_docs: bool = True
    # Tokens from an identity provider: when set, a token must carry this audience / issuer (minted ones do).
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    # The longest lifetime accepted for any token (exp - iat, or exp - now without iat).
    jwt_max_lifetime_seconds: int = Field(86400, ge=1)
    # The API refuses to start without a key unless ENVIRONMENT is dev or test, or this says so explicitly.
    allow_unauthenticated: bool = False

    # What a request head may hold before it is refused (431, or 414 for the request line), checked as the
    # bytes arrive so an oversized head is never read whole.
    header_max_bytes: int = Field(32 * 1024, ge=1024)  # request line + headers
    header_max_count: int = Field(100, ge=10)
    request_line_max_bytes: int = Field(8 * 1024, ge=256)

    # Push connections (SSE /events streams and socket.io connections) one API process holds: per user token,
    # and in all. Refused with 429 / 503 (or a socket.io connect_error) beyond.
    streams_per_user: int = Field(20, ge=1)
    streams_per_process: int = Field(5000, ge=1)
    # socket.io: the largest message a client may send (ours are a few hundred bytes), and how long a new
    # engine.io connection may stay without completing the authenticated socket.io connect.
    socketio_max_message_bytes: int = Field(16 * 1024, ge=1024)
    socketio_connect_timeout_seconds: float = Field(10.0, gt=0)

    # Model API keys: an agent's `apiKeyEnv` may only name one of these variables, or one starting with the
    # prefix (never one of this service's own secrets). MODEL_HOSTS, when set, lists the only hosts (host or
    # host:port, `*.example.com` for subdomains) agents may call; empty: any host.
    model_key_variables: Annotated[list[str], NoDecode] = ["OPENAI_API_KEY"]
    model_key_prefix: str = "MODEL_KEY_"
    model_hosts: Annotated[list[str], NoDecode] = []

    # Rate limits (fixed windows in Redis, shared by every API process). None = on, except when
    # ENVIRONMENT=test. A limit of 0 switches that one limit off.
    rate_limit_enabled: bool | None = None
    rate_limit_window_seconds: float = Field(60.0, gt=0)
    rate_limit_messages_per_session: int = Field(60, ge=0)
    rate_limit_messages_per_user: int = Field(120, ge=0)
    rate_limit_sessions_per_user: int = Field(30, ge=0)
    # Failed authentications (wrong key, invalid token) from one client address; beyond, that address is
    # refused (429) until the window ends, whatever it sends.
    rate_limit_auth_failures_per_address: int = Field(20, ge=0)

    # How long a blocking POST waits for the reply before answering 202 (for an SSE reply: the longest
    # silence before it ends with REPLY_TIMEOUT).
    reply_wait_seconds: float = 30.0
    # Keep-alive comment sent on idle SSE streams, so proxies and clients keep them open.
    sse_ping_seconds: float = Field(15.0, gt=0)
    # An SSE client that takes no data for this long is dropped: its events would otherwise pile up in memory.
    sse_send_timeout_seconds: float = Field(30.0, gt=0)
    # A connection must send its request headers within this long of being accepted, or it is closed
    # (idle sockets would otherwise be held forever). Replies and streams after the headers are not limited.
    request_header_timeout_seconds: float = Field(10.0, gt=0)
    # Redis connections per API process for commands; events reach all its listeners over one more.
    api_redis_max_connections: int = Field(8, ge=2)

    # Input limits.
    content_max_chars: int = 4000
    metadata_max_bytes: int = 10 * 1024
    attachments_max: int = 10
    request_body_max_bytes: int = 256 * 1024
    page_size_default: int = 50
    page_size_max: int = 100

    # Timeout defaults (ElizaOS field names and bounds), overridden by agent settings, then by the request.
    timeout_minutes: int = Field(30, ge=5, le=1440)
    auto_renew: bool = True
    max_duration_minutes: int = Field(720, ge=5, le=10080)
    warning_threshold_minutes: int = Field(5, ge=1, le=120)
    # How long one "minute" of timeout config lasts. Only tests shorten it, to run whole lifecycles in seconds.
    timeout_minute_seconds: float = Field(60.0, gt=0)

    # Worker behaviour.
    # Turns (model generations) one worker process runs at once. A turn waiting for a model costs no thread
    # and no database connection (about 50 KB), so this is sized by what the model servers accept, not by cores.
    worker_max_turns: int = Field(1000, ge=1)
    # A claimed message's lease, renewed every third of it while its turn runs: a worker that dies stops
    # renewing, and another takes the turn over about this long after the death.
    message_lease_seconds: float = Field(6.0, gt=0)
    # How often each worker looks for turns whose lease ran out (and for a restarted Redis).
    recovery_interval_seconds: float = Field(1.0, gt=0)
    # Streamed text is sent as one chunk event per window per reply (the first text at once), or sooner
    # once this many characters wait: fewer Redis writes and client events than one per token.
    chunk_flush_ms: float = Field(50.0, ge=0)
    chunk_flush_chars: int = Field(400, ge=1)
    # On SIGTERM a worker lets running turns finish for this long, then hands the rest to other workers.
    worker_shutdown_grace_seconds: float = Field(20.0, ge=0)
    agent_attempts: int = 3  # tries per message for transient agent failures
    agent_retry_backoff_seconds: float = 0.5
    history_window: int = 20  # earlier messages handed to the agent, unless its `historyMessages` says otherwise
    event_stream_maxlen: int = 1000  # events kept per session in its Redis Stream
    event_stream_ttl_seconds: int = 86400  # a session's Stream is dropped after this long without events

    # Each worker serves Prometheus metrics on this port (unset: no metrics server).
    worker_metrics_port: int | None = None
    worker_metrics_host: str = "127.0.0.1"

    # Beat.
    sweep_interval_seconds: float = Field(30.0, gt=0)
    sweep_batch_size: int = Field(500, ge=1)  # sessions changed per transaction
    # Lease of the lock that lets one sweep act at a time (renewed while it runs): how long a sweeper that
    # died holding it keeps the others waiting.
    sweep_lock_seconds: float = Field(10.0, gt=0)
    stuck_pending_seconds: float = 30.0  # a `pending` message this old has lost its task: re-queue it
    # Ended and expired sessions (with their messages and events) are deleted this many days after they
    # closed; None keeps them forever.
    retention_days: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _limits_fit(self) -> Settings:
        if self.warning_threshold_minutes >= self.timeout_minutes:
            raise ValueError("WARNING_THRESHOLD_MINUTES must be less than TIMEOUT_MINUTES")
        if self.max_duration_minutes < self.timeout_minutes:
            raise ValueError("MAX_DURATION_MINUTES must be at least TIMEOUT_MINUTES")
        if self.token_ttl_max_seconds > self.jwt_max_lifetime_seconds:  # minted tokens must stay acceptable
            raise ValueError("TOKEN_TTL_MAX_SECONDS must not exceed JWT_MAX_LIFETIME_SECONDS")
        return self

    @property
    def message_lease(self) -> timedelta:
        return timedelta(seconds=self.message_lease_seconds)

    @property
    def timeout_minute(self) -> timedelta:
        return timedelta(seconds=self.timeout_minute_seconds)

    @field_validator("api_key", "jwt_secret", "jwt_public_key", "jwt_private_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # `AGENT_SESSIONS_API_KEY=` (e.g. an unset compose variable) must not enable an empty, guessable key.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cors_origins", "model_key_variables", "model_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @property
    def auth_enabled(self) -> bool:
        return self.api_key is not None or self.jwt_verification_key is not None

    @property
    def jwt_verification_key(self) -> str | None:
        if self.jwt_algorithm == "HS256":
            return self.jwt_secret.get_secret_value() if self.jwt_secret else None
        return self.jwt_public_key

    @property
    def jwt_signing_key(self) -> str | None:
        if self.jwt_algorithm == "HS256":
            return self.jwt_secret.get_secret_value() if self.jwt_secret else None
        return self.jwt_private_key.get_secret_value() if self.jwt_private_key else None

    @property
    def rate_limits_on(self) -> bool:
        return self.rate_limit_enabled if self.rate_limit_enabled is not None else self.environment != "test"

    @property
    def debug_open(self) -> bool:
        """Whether any caller may ask for `X-Debug` details (otherwise only the server key may)."""
        return self.environment in ("dev", "test")

    @property
    def async_database_url(self) -> str:
        """The same database through an asyncio driver (psycopg 3 async, aiosqlite)."""
        url = self.database_url
        if url.startswith("sqlite:"):
            return "sqlite+aiosqlite:" + url.removeprefix("sqlite:")
        for prefix in ("postgresql+psycopg:", "postgresql:", "postgres:"):
            if url.startswith(prefix):
                return "postgresql+psycopg:" + url.removeprefix(prefix)
        return url

    @property
    def sync_database_url(self) -> str:
        url = self.database_url
        for prefix in ("postgresql:", "postgres:"):
            if url.startswith(prefix):
                return "postgresql+psycopg:" + url.removeprefix(prefix)
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
