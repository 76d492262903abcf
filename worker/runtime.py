"""This worker process's turn runtime: an event loop in a thread of its own, started with the worker.

Celery delivers `sessions.process` tasks to a few pool threads; each hands its session to the runtime,
waits until the session's next turn is claimed (so a task is acknowledged only once its turn is recorded
in the database, under a lease), and returns. The turns themselves run on the runtime's loop, hundreds at
once. A warm shutdown stops claiming, lets running turns finish for `WORKER_SHUTDOWN_GRACE_SECONDS`, and
hands the rest back to the queue.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from celery.signals import worker_init, worker_shutdown, worker_shutting_down

from core.bus import Keys, redis_client
from core.runtime.runner import TurnRunner, runtime_engine
from core.settings import Settings, get_settings
from core.sweeps import BeatContext, build_beat_context
from core.taskqueue import AsyncTaskSender

# Redis connections of a worker process's runtime: publishing is one pipeline at a time, so a few suffice;
# a turn needing one while all are busy waits for it (never "Too many connections").
REDIS_CONNECTIONS = 16


class WorkerRuntime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stopping = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="turn-runtime", daemon=True)
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._runner: TurnRunner | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60) or self._runner is None:
            raise RuntimeError("the turn runtime did not start") from self._error

    def process(self, session_id: uuid.UUID, log_context: dict[str, Any]) -> bool:
        """Claim and start the session's next turn (True), or find none to start (False)."""
        assert self._runner is not None
        return asyncio.run_coroutine_threadsafe(self._runner.process(session_id, log_context), self._loop).result()

    def stop_claiming(self) -> None:
        self.stopping = True
        if self._runner is not None:
            self._loop.call_soon_threadsafe(setattr, self._runner, "accepting", False)

    def stop(self) -> None:
        """Finish or hand back the running turns, then close the connections (blocks, up to the grace period)."""
        self.stop_claiming()
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self.settings.worker_shutdown_grace_seconds + 15)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._ready.set()

    async def _main(self) -> None:
        settings = self.settings
        client = redis_client(settings.redis_url or "", max_connections=REDIS_CONNECTIONS, pool_wait_seconds=30)
        engine = runtime_engine(settings)
        keys = Keys(settings.redis_prefix)
        runner = TurnRunner(settings, engine, client, keys, AsyncTaskSender(client, keys, settings.celery_queue))
        await runner.start()
        self._stop = asyncio.Event()
        self._runner = runner
        self._ready.set()
        try:
            await self._stop.wait()
            await runner.stop(settings.worker_shutdown_grace_seconds)
        finally:
            await client.aclose()
            engine.dispose()


_runtime: WorkerRuntime | None = None
_beat: BeatContext | None = None
_lock = threading.Lock()


def get_runtime() -> WorkerRuntime:
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = WorkerRuntime(get_settings())
            _runtime.start()
        return _runtime


def get_beat_context() -> BeatContext:
    """Connections for the sweep task (plain threads: the beat's work is batch SQL, not waiting)."""
    global _beat
    with _lock:
        if _beat is None:
            _beat = build_beat_context(get_settings())
        return _beat


@worker_init.connect
def _start_runtime(**_: object) -> None:
    # At start, not at the first task: a worker started after another died takes over its turns unasked.
    get_runtime()


@worker_shutting_down.connect
def _stop_claiming(**_: object) -> None:
    if _runtime is not None:
        _runtime.stop_claiming()


@worker_shutdown.connect
def _stop_runtime(**_: object) -> None:
    if _runtime is not None:
        _runtime.stop()
