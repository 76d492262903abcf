"""History pages of 50 in a session with 100,000 messages: newest, middle and oldest position.

Keyset pagination on (session_id, seq) makes the cost independent of depth: the oldest page is compared
with the newest one measured in the same run. Run: .venv/bin/python tests/bench/bench_history.py
"""

from __future__ import annotations

import argparse
import time
import uuid

import httpx
from common import print_table, scratch_postgres, stack, summary  # type: ignore[import-not-found]
from sqlalchemy import create_engine, text

from core.models import DEFAULT_AGENT_ID

FILL = """
INSERT INTO messages (id, session_id, seq, role, author_id, content, metadata, status, created_at, attempts)
SELECT md5(:sid || n)::uuid, CAST(:sid AS uuid), n, CASE WHEN n % 2 = 1 THEN 'user' ELSE 'agent' END, 'bench',
       'message number ' || n, '{}'::jsonb, 'completed', now() - make_interval(secs => :count - n), 0
FROM generate_series(1, :count) AS n
"""


def fill(database_url: str, count: int) -> str:
    session_id = str(uuid.uuid4())
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO sessions (id, agent_id, user_id, status, metadata, timeout_minutes, auto_renew, "
            "max_duration_minutes, warning_threshold_minutes, created_at, last_activity_at, expires_at, "
            "renewal_count, message_count, state, agent_state, next_seq, event_seq) VALUES (:sid, :agent, 'bench', "
            "'active', '{}', 30, true, 720, 5, now(), now(), now() + interval '1 day', 0, :count, '{}', '{}', "
            ":count, 0)"), {"sid": session_id, "agent": str(DEFAULT_AGENT_ID), "count": count})
        conn.execute(text(FILL), {"sid": session_id, "count": count})
        conn.execute(text("ANALYZE messages"))
    engine.dispose()
    return session_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    with scratch_postgres() as database_url, stack(database_url, "history", workers=0, PROCESSING="inline") as api:
        session_id = fill(database_url, args.messages)
        positions = {"newest": None, "middle": f"seq:{args.messages // 2}", "oldest": "seq:51"}
        results = {}
        with httpx.Client(base_url=api.base_url, timeout=30) as http:
            url = f"/api/messaging/sessions/{session_id}/messages"
            for name, before in positions.items():
                params = {"limit": 50, **({"before": before} if before else {})}
                timings = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    page = http.get(url, params=params)
                    timings.append((time.perf_counter() - started) * 1000)
                    assert page.status_code == 200 and len(page.json()["messages"]) == 50
                results[name] = summary(timings)
    newest = results["newest"]["p50"]
    print_table(f"History page of 50 in a {args.messages:,}-message session (ms, {args.repeat} requests each)",
                ["position", "p50", "p99", "p50 / newest"],
                [[name, r["p50"], r["p99"], r["p50"] / newest] for name, r in results.items()])


if __name__ == "__main__":
    main()
