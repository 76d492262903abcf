"""The short fault-and-load run CI does: a few hundred messages, a worker SIGKILL mid-message and a Redis
restart in the middle, then the audit. (The long run is `python -m tests.reliability.harness`; see
docs/reliability.md.)"""

from __future__ import annotations

import shutil

import pytest

from tests.reliability.harness import HarnessConfig, run
from tests.reliability.servers import postgres_bin_dir


def _servers_missing() -> str | None:
    try:
        postgres_bin_dir()
    except RuntimeError as exc:
        return str(exc)
    return None if shutil.which("redis-server") else "redis-server not found"


@pytest.mark.skipif(_servers_missing() is not None, reason=str(_servers_missing()))
def test_nothing_lost_or_duplicated_through_a_worker_kill_and_a_redis_restart() -> None:
    report = run(HarnessConfig(sessions=20, messages_per_session=15, duration=20, workers=2,
                               faults=("worker_sigkill", "redis_restart")))

    audit = report["audit"]
    assert audit["user_messages"] == audit["client_sends"] == 300, audit
    assert audit["answered"] == audit["replies"] == 300, audit
    assert (audit["lost"], audit["duplicate_replies"], audit["duplicate_user_messages"]) == (0, 0, 0), audit
    assert (audit["order_violations"], audit["stuck"], audit["failed"]) == (0, 0, 0), audit
    assert audit["client_reply_mismatch"] == 0 and audit["sessions_with_event_gaps"] == 0, audit
    assert report["passed"], report
    kill, restart = report["faults"]
    assert kill["name"] == "worker_sigkill" and kill["notes"]["mid_message"]
    # While Redis was away, sends were refused with a clear, retryable error (nothing stored).
    probe = restart["notes"]["probe"]
    assert set(probe["responses"]) == {"503 SERVICE_UNAVAILABLE"}, probe
    assert probe["with_retry_after"] == sum(probe["responses"].values())
    assert report["event_streams"]["status"] in ("passed", "skipped"), report["event_streams"]


@pytest.mark.skipif(_servers_missing() is not None, reason=str(_servers_missing()))
def test_slow_agent_sessions_get_202_then_their_reply_with_the_default_wait() -> None:
    # The default 5 s wait, as the README's long command runs it: the slow agent must still be slower.
    report = run(HarnessConfig(sessions=3, messages_per_session=2, duration=4, faults=("slow_agent",)))

    assert report["passed"], report["audit"]
    slow = report["latency"]["slow_agent"]
    assert slow["count"] == 4 and slow["answered_202_then_reply"] == 4, slow
    assert report["audit"]["answered"] == report["audit"]["client_sends"] == 6, report["audit"]
