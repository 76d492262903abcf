"""The API guide's JavaScript examples, unchanged, run by Node's built-in fetch against the real server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.models import DEFAULT_AGENT_ID
from tests.support.processes import Stack

HARNESS = Path(__file__).parent / "node" / "run_guide_examples.mjs"
REPO = Path(__file__).resolve().parents[2]


def _guide() -> Path | None:
    explicit = os.environ.get("GUIDE_PATH")
    if explicit:
        return Path(explicit)
    # Beside the repository, or beside the directory holding this checkout (a git worktree).
    for base in REPO.parents[:2]:
        guides = sorted((base / "shared" / "seeds").glob("*.txt"))
        if guides:
            return guides[0]
    return None


@pytest.fixture(scope="module")
def results(stack: Stack) -> dict[str, Any]:
    guide = _guide()
    if guide is None or not guide.exists():
        pytest.skip("the API guide (shared/seeds/*.txt beside the repository) is not on this machine")
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    completed = subprocess.run(["node", str(HARNESS), str(guide), stack.base_url, str(DEFAULT_AGENT_ID)],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_quick_start_helpers_create_and_chat(results: dict[str, Any]) -> None:
    assert results["quickStart"]["sessionId"]
    assert results["quickStart"]["reply"]["content"]


def test_send_example_logs_content_and_thought(results: dict[str, Any]) -> None:
    content, thought = (log[0] for log in results["send"]["logs"])
    assert content == results["send"]["agentResponse"]["content"] and content
    assert thought == results["send"]["agentResponse"]["metadata"]["thought"] and thought


def test_history_example_reads_messages_and_has_more(results: dict[str, Any]) -> None:
    assert len(results["history"]["messages"]) == 2
    assert results["history"]["hasMore"] is False


def test_pagination_examples_answer_pages(results: dict[str, Any]) -> None:
    # The guide's dates are in January 2024: everything here is after them and nothing before.
    assert results["page_before"]["status"] == 200 and results["page_before"]["body"]["messages"] == []
    assert results["page_after"]["status"] == 200 and len(results["page_after"]["body"]["messages"]) == 2


def test_health_example_reads_status_and_active_sessions(results: dict[str, Any]) -> None:
    assert results["health"]["status"] == "healthy"
    assert results["health"]["activeSessions"] >= 1


def test_debug_example_creates_a_session(results: dict[str, Any]) -> None:
    assert results["debug"]["status"] == 201 and results["debug"]["body"]["sessionId"]


def test_end_example_ends_the_session(results: dict[str, Any]) -> None:
    assert results["ended"]["status"] == "ended"


def test_error_handling_example_recreates_on_404_and_logs_other_errors(results: dict[str, Any]) -> None:
    assert results["errorHandling"]["recreated"] == 1
    [logged] = results["errorHandling"]["loggedErrors"]
    assert logged[0] == "Error:" and "ended" in logged[1]
