"""compose.yaml and the Dockerfile name only commands this project has, with options it accepts."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer
import typer.main
import yaml

from agent_sessions.cli import cli

ROOT = Path(__file__).resolve().parents[2]
CLI = typer.main.get_command(cli)
INFRASTRUCTURE = {"postgres", "redis"}  # third-party images, not our commands


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def check_our_command(argv: list[str]) -> None:
    """Parse `agent-sessions <subcommand> ...` exactly as the CLI would, without running it."""
    assert argv[0] == "agent-sessions", argv
    subcommand = CLI.commands.get(argv[1])  # type: ignore[attr-defined]
    assert subcommand is not None, f"no `agent-sessions {argv[1]}` command"
    subcommand.make_context(argv[1], list(argv[2:]))  # raises on an unknown option or a bad value


@pytest.mark.parametrize("name", sorted(set(compose()["services"]) - INFRASTRUCTURE))
def test_every_app_service_runs_an_existing_cli_command(name: str) -> None:
    service = compose()["services"][name]

    assert service["build"] == "." and (ROOT / "Dockerfile").exists()
    check_our_command(service["command"])


def test_the_stack_has_the_services_of_a_deployment() -> None:
    services = compose()["services"]

    assert {"postgres", "redis", "migrate", "api", "worker", "beat", "flower"} <= set(services)
    assert services["api"]["deploy"]["replicas"] == 2
    assert services["flower"]["profiles"] == ["flower"]
    assert services["worker"]["environment"]["WORKER_METRICS_PORT"]
    for name in ("api", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_dockerfile_default_command_exists() -> None:
    cmd_line = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD"))
    check_our_command(yaml.safe_load(cmd_line.removeprefix("CMD")))


def test_procfile_entries_are_cli_commands() -> None:
    for line in (ROOT / "Procfile").read_text().splitlines():
        _, _, command = line.partition(":")
        argv = [arg.replace("${HOST:-0.0.0.0}", "0.0.0.0").replace("${PORT:-3000}", "3000")
                for arg in shlex.split(command)]
        check_our_command(argv)



def test_the_check_rejects_unknown_commands_and_options() -> None:
    with pytest.raises(AssertionError):
        check_our_command(["agent-sessions", "serve"])
    with pytest.raises(typer.BadParameter):
        check_our_command(["agent-sessions", "api", "--workers", "many"])
    with pytest.raises(Exception, match="No such option"):
        check_our_command(["agent-sessions", "beat", "--bogus"])


def test_compose_stops_without_a_server_key_and_publishes_on_loopback_only() -> None:
    document = compose()
    keys = [service.get("environment", {}).get("AGENT_SESSIONS_API_KEY")
            for service in (document["x-app"], *document["services"].values())]

    # `${VAR:?message}`: compose refuses to run the file while VAR is unset or empty, printing the message.
    assert [key for key in keys if key is not None]
    for key in filter(None, keys):
        assert key.startswith("${AGENT_SESSIONS_API_KEY:?") and "secrets.token_urlsafe(32)" in key, key
    for name in ("api", "flower"):
        assert all(port.startswith("127.0.0.1:") for port in document["services"][name]["ports"]), name
