"""core/ is shared by the edges and knows none of them: no module of core/ imports api/, worker/ or the
composition root agent_sessions/, nor names one of their modules for a later import."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EDGES = ("api", "worker", "agent_sessions")
# A module path handed to uvicorn or importlib: "api.app:create_server", "worker.celery_app".
MODULE_PATH = re.compile(rf"^({'|'.join(EDGES)})(\.\w+)+(:\w+)?$")


def edge_references(path: Path) -> list[str]:
    """`file:line module` for each import of an edge, and each string naming an edge's module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_PATH.match(node.value):
            modules = [node.value]
        else:
            continue
        found += [f"{path.relative_to(ROOT)}:{node.lineno} {module}" for module in modules
                  if module.split(".")[0] in EDGES]
    return found


def test_no_core_module_imports_an_edge() -> None:
    modules = sorted((ROOT / "core").rglob("*.py"))

    references = [reference for path in modules for reference in edge_references(path)]

    assert len(modules) > 30  # the walk found core/
    assert references == []
