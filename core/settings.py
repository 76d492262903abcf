"""Settings from the environment (and a `.env` file), read once per process."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    environment: str = "production"
    # Logs: JSON lines, or readable console output; "auto" picks console when ENVIRONMENT is dev.
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    cors_origins: list[str] = ["http://localhost:3000", "http://127.0.0.1:3000"]

    # How long a blocking POST waits for the reply before answering 202 (for an SSE reply: the longest
    # silence before it ends with REPLY_TIMEOUT).
    reply_wait_seconds: float = 30.0
    # Keep-alive comment sent on idle SSE streams, so proxies and clients keep them open.
    sse_ping_seconds: float = Field(15.0, gt=0)
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
    session_lock_seconds: float = 30.0  # lease of a session's processing lock, renewed while held
    message_lease_seconds: float = 120.0  # a `processing` message older than this is re-queued by the sweep
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
    def _timeouts_fit(self) -> Settings:
        if self.warning_threshold_minutes >= self.timeout_minutes:
            raise ValueError("WARNING_THRESHOLD_MINUTES must be less than TIMEOUT_MINUTES")
        if self.max_duration_minutes < self.timeout_minutes:
            raise ValueError("MAX_DURATION_MINUTES must be at least TIMEOUT_MINUTES")
        return self

    @property
    def timeout_minute(self) -> timedelta:
        return timedelta(seconds=self.timeout_minute_seconds)

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
