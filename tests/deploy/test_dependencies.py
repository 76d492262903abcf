"""pyproject.toml declares what the code imports, bounded below and above, and constraints.txt pins it all."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CLIENT = [Requirement(line) for line in tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
          ["dependencies"]]
# Our own distributions: the client is installed from ./client at exactly the version beside the server.
OURS = {"api", "core", "worker", "tests", "agent_sessions", "agent_sessions_client"}
LOCAL = {canonicalize_name("agent-sessions-client")}
RUNTIME = [Requirement(line) for line in PROJECT["dependencies"]]
EXTRAS = {name: [Requirement(line) for line in lines] for name, lines in PROJECT["optional-dependencies"].items()}
# Loaded by SQLAlchemy from the database URL's driver name, never imported by our code.
DRIVERS = {"psycopg": "postgresql+psycopg://", "aiosqlite": "sqlite+aiosqlite://"}
# tests/bench runs peers (agno, langgraph) from their own environment and tries uvloop when it is there.
NOT_SCANNED = {ROOT / "tests" / "bench"}


def _names(requirements: list[Requirement]) -> set[str]:
    return {canonicalize_name(requirement.name) for requirement in requirements}


def _third_party_imports(*folders: str) -> dict[str, Path]:
    """Top-level modules imported by the code under `folders` that are neither ours nor the standard library."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            if any(path.is_relative_to(skipped) for skipped in NOT_SCANNED):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OURS:
                        found.setdefault(top, path)
    return found


def _undeclared(imports: dict[str, Path], declared: set[str]) -> list[str]:
    providers = importlib.metadata.packages_distributions()
    return [f"{module} ({path.relative_to(ROOT)})" for module, path in sorted(imports.items())
            if not _names([Requirement(name) for name in providers.get(module, [module])]) & declared]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_the_server_declares_every_package_it_imports() -> None:
    runtime_extras = [requirement for name, extra in EXTRAS.items() if name != "dev" for requirement in extra]

    assert _undeclared(_third_party_imports("agent_sessions", "api", "core", "worker"),
                       _names(RUNTIME + runtime_extras)) == []


def test_the_client_declares_every_package_it_imports() -> None:
    assert _undeclared(_third_party_imports("client"), _names(CLIENT)) == []


def test_the_tests_declare_every_package_they_import() -> None:
    every_extra = [requirement for extra in EXTRAS.values() for requirement in extra]

    assert _undeclared(_third_party_imports("tests"), _names(RUNTIME + CLIENT + every_extra)) == []


def test_every_runtime_dependency_is_imported_or_a_database_driver() -> None:
    providers = importlib.metadata.packages_distributions()
    imported = {canonicalize_name(dist) for module in _third_party_imports("agent_sessions", "api", "core", "worker")
                for dist in providers.get(module, [])}

    assert sorted(_names(RUNTIME) - imported - set(DRIVERS) - LOCAL) == []


def test_every_runtime_dependency_has_a_floor_and_a_ceiling() -> None:
    unbounded = [str(requirement) for requirement in RUNTIME + CLIENT + EXTRAS["embedded"] + EXTRAS["flower"]
                 if canonicalize_name(requirement.name) not in LOCAL
                 and {">=", "<"} - {spec.operator for spec in requirement.specifier}]

    assert unbounded == []


def test_constraints_pin_every_dependency_within_its_bounds() -> None:
    pins = _constraints()
    every = [requirement for requirement in RUNTIME + CLIENT + [requirement for extra in EXTRAS.values()
                                                                 for requirement in extra]
             if canonicalize_name(requirement.name) not in LOCAL]

    misfits = [f"{requirement} (pinned: {pins.get(canonicalize_name(requirement.name))})" for requirement in every
               if pins.get(canonicalize_name(requirement.name)) not in requirement.specifier]
    assert misfits == []


def test_the_makefile_and_the_dockerfile_install_the_pinned_versions() -> None:
    makefile_install = [line for line in (ROOT / "Makefile").read_text().splitlines() if "pip install" in line
                        and "--upgrade pip" not in line and "$$scratch" not in line]  # `make lock` resolves anew
    dockerfile_install = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if "pip install" in line]

    assert makefile_install and dockerfile_install
    assert all("-c constraints.txt" in line for line in makefile_install + dockerfile_install)
