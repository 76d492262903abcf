"""A worker that keeps itself running: `agent-sessions worker` runs the Celery worker as a child process and
starts it again when it exits without being asked to.

Celery's consumer can exit by itself when Redis goes away while tasks are in hand (kombu's "Unrecoverable
error: AttributeError: 'NoneType' object has no attribute 'hostname'", exit code 0, seen in 2 of 5 Redis
restarts); whatever runs the worker (compose, a Procfile, systemd) would then see a clean exit and leave it
down. The child's running turns die with it; their leases lapse and the new child (or any other worker)
takes them over within seconds.

SIGTERM and SIGINT are passed to the child (a warm shutdown) and end the supervision. The child is killed
if the supervisor dies (Linux's parent-death signal), so killing the worker's pid still kills the worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import signal
import subprocess
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)
PR_SET_PDEATHSIG = 1
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0
# A child that ran this long before exiting restarts at once: it was not crash-looping.
STABLE_SECONDS = 60.0


def die_with_parent() -> None:
    """In the child, before exec: get SIGKILL when the supervisor dies (Linux only; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def supervise(command: list[str], *, sleep: Callable[[float], None] = time.sleep) -> int:
    """Run `command` until it exits after a stop request; returns its exit code then."""
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    delay = FIRST_DELAY_SECONDS
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command, preexec_fn=die_with_parent)  # prctl only, no locks: safe
        code = child.wait()
        if stopping:
            return code
        if time.monotonic() - started >= STABLE_SECONDS:
            delay = FIRST_DELAY_SECONDS
        log.error("the worker exited without being asked to; starting it again", exit_code=code,
                  restart_in_seconds=delay)
        sleep(delay)
        if stopping:
            return code
        delay = min(delay * 2, MAX_DELAY_SECONDS)

