"""A lock in Redis with a lease renewed while held (the beat's sweep lock: one sweep acts at a time).

One keeper thread per process renews every lock held in it, instead of a thread per lock: starting and
joining a thread for every message cost more CPU than the message's Redis calls.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

import redis
from redis.commands.core import Script

# Sent by SHA (EVALSHA), loaded on first use. KEYS: lock; ARGV: token.
_RELEASE = b"if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end"
_RENEW = (b"if redis.call('get', KEYS[1]) == ARGV[1] then "
          b"return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0")


class LeaseLock:
    def __init__(self, client: redis.Redis, key: str, lease_seconds: float) -> None:
        self._redis = client
        self._release: Script = client.register_script(_RELEASE)
        self._renew: Script = client.register_script(_RENEW)
        self.key = key
        self.lease_ms = int(lease_seconds * 1000)
        self.token = uuid.uuid4().hex
        self.lost = False  # set when the lease could not be renewed: another worker may take over

    def acquire(self) -> bool:
        if not self._redis.set(self.key, self.token, nx=True, px=self.lease_ms):
            return False
        _keeper().hold(self)
        return True

    def release(self) -> None:
        _keeper().drop(self)
        self._release(keys=[self.key], args=[self.token])

    def renew(self) -> None:
        try:
            renewed = self._renew(keys=[self.key], args=[self.token, self.lease_ms])
        except redis.RedisError:
            return  # try again at the next round; the lease outlasts two missed renewals
        if not renewed:
            self.lost = True


class _Keeper:
    """Renews each held lock at a third of its lease, so one missed renewal does not lose it."""

    def __init__(self) -> None:
        self._due: dict[LeaseLock, float] = {}
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="lock-keeper", daemon=True)
        self._thread.start()

    def hold(self, lock: LeaseLock) -> None:
        with self._changed:
            self._due[lock] = time.monotonic() + lock.lease_ms / 3000
            self._changed.notify()

    def drop(self, lock: LeaseLock) -> None:
        with self._changed:
            self._due.pop(lock, None)

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [lock for lock, at in self._due.items() if at <= now]
                if not due:
                    self._changed.wait(min(self._due.values(), default=now + 60) - now)
                    continue
                for lock in due:
                    self._due[lock] = now + lock.lease_ms / 3000
            for lock in due:
                lock.renew()


_keepers: dict[int, _Keeper] = {}
_keepers_lock = threading.Lock()


def _keeper() -> _Keeper:
    # Keyed by pid: a forked worker child starts its own thread rather than relying on the parent's.
    with _keepers_lock:
        keeper = _keepers.get(os.getpid())
        if keeper is None:
            keeper = _keepers[os.getpid()] = _Keeper()
        return keeper
