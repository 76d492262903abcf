"""Status and role values are spelled once, in core/sessions/status.py: no module of core/, api/ or worker/
writes one as a bare string. Migrations keep theirs (they are history)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from core.sessions.status import MessageStatus, Role, SessionStatusName

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("core", "api", "worker")
SPELLED_HERE = Path("core/sessions/status.py")
HISTORY = Path("core/migrations/versions")
VALUES = {member.value for enum in (SessionStatusName, MessageStatus, Role) for member in enum}
# Strings equal to a status or role value that name something else, each counted: one more fails the test.
OTHER_MEANINGS = {
    ("core/agents/prompt.py", "user"): 1,  # the OpenAI chat protocol's role names
    ("core/agents/prompt.py", "system"): 1,
    ("core/auth.py", "user"): 3,  # a caller's role (admin or user), not a message's
    ("core/schemas.py", "active"): 2,  # an agent's status (ElizaOS's active or inactive)
}


def bare_values(root: Path) -> Counter[tuple[str, str]]:
    """(file, value) of every string constant equal to a status or role value, counted."""
    found: Counter[tuple[str, str]] = Counter()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            if relative == SPELLED_HERE or HISTORY in relative.parents:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in VALUES:
                    found[(relative.as_posix(), node.value)] += 1
    return found


def test_no_bare_status_or_role_value_outside_the_enums() -> None:
    found = bare_values(ROOT)

    assert {key: count for key, count in found.items() if OTHER_MEANINGS.get(key) != count} == {}


def test_the_scan_finds_a_bare_value(tmp_path: Path) -> None:
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "sweeps.py").write_text('def closed(row):\n    return row.status == "ended"\n')

    assert bare_values(tmp_path) == {("core/sweeps.py", "ended"): 1}
