"""Rate limits: fixed windows counted in Redis, so every API process shares them.

One Lua script checks every bucket a request touches and counts it in all of them only if none is full:
a refused request costs no quota, and two processes can never both take the last slot.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import redis.asyncio as aredis

from core.bus import Keys
from core.errors import RateLimited
from core.settings import Settings

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
