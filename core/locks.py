"""Per-session processing lock in Redis: one holder at a time, a lease renewed while held."""

from __future__ import annotations

import threading
import uuid

import redis

_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_RENEW = ("if redis.call('get', KEYS[1]) == ARGV[1] then "
          "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0")


class SessionLock:
    def __init__(self, client: redis.Redis, key: str, lease_seconds: float) -> None:
        self._redis = client
        self._key = key
        self._lease_ms = int(lease_seconds * 1000)
        self._token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False  # set when the lease could not be renewed: another worker may take over

    def acquire(self) -> bool:
        if not self._redis.set(self._key, self._token, nx=True, px=self._lease_ms):
            return False
        self._stop.clear()
        self._renewer = threading.Thread(target=self._keep_alive, name=f"lock-renewer:{self._key}", daemon=True)
        self._renewer.start()
        return True

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        self._redis.eval(_RELEASE, 1, self._key, self._token)

    def _keep_alive(self) -> None:
        # Renew at a third of the lease, so one missed renewal does not lose the lock.
        while not self._stop.wait(self._lease_ms / 3000):
            try:
                if not self._redis.eval(_RENEW, 1, self._key, self._token, self._lease_ms):
                    self.lost = True
                    return
            except redis.RedisError:
                continue
