"""The client installs on its own: `pip install ./client` into an empty virtual environment brings none of
the server's dependencies, and the package and its chat work there."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "client"
SERVER_ONLY = {"sqlalchemy", "sqlmodel", "litestar", "celery", "vadersentiment"}
DECLARED = {"httpx", "httpx_sse", "rich"}  # client/pyproject.toml's dependencies, as imported


def run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_client_installs_into_an_empty_venv_without_the_server(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", CLIENT, cwd=tmp_path)

    installed = {package["name"].lower() for package in
                 json.loads(run(python, "-m", "pip", "list", "--format=json", cwd=tmp_path))}
    imported = run(python, "-c", "import agent_sessions_client, importlib.util; "
                   "print(agent_sessions_client.SessionsClient.__name__, importlib.util.find_spec('core'))",
                   cwd=tmp_path)
    chat_help = run(venv / "bin" / "agent-sessions-chat", "--help", cwd=tmp_path)

    assert {"agent-sessions-client", "httpx", "httpx-sse", "rich"} <= installed
    assert installed & SERVER_ONLY == set()
    assert imported.split() == ["SessionsClient", "None"]  # and no server package came along
    assert "usage: agent-sessions-chat" in chat_help and "--api-key" in chat_help


def test_client_modules_import_only_the_standard_library_and_declared_dependencies() -> None:
    imported: set[str] = set()
    for path in (CLIENT / "agent_sessions_client").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])

    assert imported - set(sys.stdlib_module_names) - {"agent_sessions_client"} == DECLARED
