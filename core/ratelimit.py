"""Rate limits: fixed windows counted in Redis, so every API process shares them.

One Lua script checks every bucket a request touches and counts it in all of them only if none is full:
a refused request costs no quota, and two processes can never both take the last slot.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass

import redis.asyncio as aredis

from core.bus import Keys
from core.errors import CredentialsMissing, RateLimited, TokenExpired, Unauthorized
from core.settings import Settings

log = logging.getLogger(__name__)

# KEYS: the buckets; ARGV: each bucket's limit, then the window in ms. Returns {0, 0} when admitted, else
# {index of the full bucket (1-based), ms until its window ends}.
_ADMIT = """
local window = tonumber(ARGV[#KEYS + 1])
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i]) then
    local ttl = redis.call('PTTL', key)
    if ttl < 0 then
      redis.call('PEXPIRE', key, window)
      ttl = window
    end
    return {i, ttl}
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 or redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, window)
  end
end
return {0, 0}
"""


@dataclass(frozen=True)
class Bucket:
    name: str  # what is counted, for the error: "session messages", ...
    key: str
    limit: int


class RateLimiter:
    def __init__(self, client: aredis.Redis, keys: Keys, settings: Settings) -> None:
        self._keys = keys
        self._settings = settings
        self._admit = client.register_script(_ADMIT)
        self.enabled = settings.rate_limits_on

    async def message(self, session_id: uuid.UUID, user_id: str) -> None:
        """Count one message sent to a session of `user_id`; raise `RateLimited` when a window is full."""
        settings = self._settings
        await self._hit([
            Bucket("messages per session", self._keys.rate_limit("msg-session", session_id),
                   settings.rate_limit_messages_per_session),
            Bucket("messages per user", self._keys.rate_limit("msg-user", user_id),
                   settings.rate_limit_messages_per_user),
        ])

    async def session_created(self, user_id: str) -> None:
        await self._hit([Bucket("sessions per user", self._keys.rate_limit("sessions-user", user_id),
                                self._settings.rate_limit_sessions_per_user)])

    async def _hit(self, buckets: list[Bucket]) -> None:
        buckets = [bucket for bucket in buckets if bucket.limit > 0]
        if not self.enabled or not buckets:
            return
        window_ms = int(self._settings.rate_limit_window_seconds * 1000)
        full, wait_ms = await self._admit(keys=[bucket.key for bucket in buckets],
                                          args=[*(bucket.limit for bucket in buckets), window_ms])
        if full:
            bucket = buckets[int(full) - 1]
            retry_after = max(1, math.ceil(int(wait_ms) / 1000))
            raise RateLimited(f"too many {bucket.name}: at most {bucket.limit} per "
                              f"{self._settings.rate_limit_window_seconds:g} s; retry in {retry_after} s",
                              retry_after=retry_after, limit=bucket.limit, bucket=bucket.name,
                              windowSeconds=self._settings.rate_limit_window_seconds)


# KEYS: the address's failure counter; ARGV: the window in ms. Counts one failure; returns {count, ms left}.
_COUNT_FAILURE = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {count, redis.call('PTTL', KEYS[1])}
"""


class AuthFailures:
    """Failed authentications per client address: each one logged with the address, counted in Redis (all API
    processes share the count). Past RATE_LIMIT_AUTH_FAILURES_PER_ADDRESS in a window, the address is refused
    (429) until the window ends, whatever it sends, right credentials included, so guessing stops there.

    A refusal is remembered by the process that decided it, so requests from addresses in good standing cost
    no Redis round trip; another process learns of it at that address's next failure there. Missing
    credentials and expired tokens (genuinely signed) are not guesses: logged, not counted.
    """

    def __init__(self, client: aredis.Redis, keys: Keys, settings: Settings) -> None:
        self._keys = keys
        self._settings = settings
        self._count = client.register_script(_COUNT_FAILURE)
        self._refused_until: dict[str, float] = {}  # address -> time.monotonic() when its refusal ends
        self.enabled = settings.rate_limits_on and settings.rate_limit_auth_failures_per_address > 0

    def check(self, address: str | None) -> None:
        """Raise RateLimited while this address is refused."""
        until = self._refused_until.get(address or "")
        if until is None:
            return
        left = until - time.monotonic()
        if left <= 0:
            del self._refused_until[address or ""]
            return
        raise self._refusal(math.ceil(left))

    async def failed(self, address: str | None, error: Unauthorized, where: str) -> None:
        """Record a failed authentication; raise RateLimited when it was one too many."""
        counted = self.enabled and address is not None and not isinstance(error, CredentialsMissing | TokenExpired)
        level = logging.WARNING if counted else logging.INFO
        log.log(level, "authentication failed", extra={"client": address, "code": error.code, "reason": error.message,
                                                       "where": where})
        if not counted or address is None:
            return
        window_ms = int(self._settings.rate_limit_window_seconds * 1000)
        count, left_ms = await self._count(keys=[self._keys.rate_limit("auth-failures", address)], args=[window_ms])
        if int(count) > self._settings.rate_limit_auth_failures_per_address:
            retry_after = max(1, math.ceil(int(left_ms) / 1000))
            self._refused_until[address] = time.monotonic() + retry_after
            log.warning("client refused after repeated authentication failures",
                        extra={"client": address, "failures": int(count), "retry_after": retry_after})
            raise self._refusal(retry_after)

    def _refusal(self, retry_after: int) -> RateLimited:
        limit = self._settings.rate_limit_auth_failures_per_address
        return RateLimited(f"too many failed authentications from this address: at most {limit} per "
                           f"{self._settings.rate_limit_window_seconds:g} s; retry in {retry_after} s",
                           retry_after=retry_after, limit=limit, bucket="auth failures per address",
                           windowSeconds=self._settings.rate_limit_window_seconds)
