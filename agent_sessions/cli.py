"""`agent-sessions`: run the API, a worker, the beat, migrations, or everything at once (`dev`)."""

from __future__ import annotations

import os
import re

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
def makemigration(message: str = typer.Argument(help="What the migration changes, e.g. \"sessions.locale\""),
                  empty: bool = typer.Option(False, help="Write a blank migration to fill in by hand")) -> None:
    """Write the next migration from what the models have and the migrations lack (review it before committing)."""
    from core.migrations import make_migration

    path = make_migration(message, empty=empty)
    if path is None:
        typer.echo("the migrations already match the models: nothing written (--empty for a blank one)", err=True)
        raise typer.Exit(1)
    typer.echo(f"wrote {path}")


@cli.command()
def api(host: str = typer.Option(None, help="Defaults to HOST"),
        port: int = typer.Option(None, help="Defaults to PORT"),
        workers: int = typer.Option(1, help="API processes")) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from api.server import server_options

    settings = get_settings()
    # log_config=None: uvicorn's loggers go through ours (configured by create_app), not its own formatters.
    uvicorn.run("api.app:create_server", factory=True, host=host or settings.host, port=port or settings.port,
                workers=workers, log_level="warning", log_config=None, access_log=False, lifespan="on",
                **server_options())


# Celery pool threads per worker: they only hand sessions to the turn runtime (a claim each), so a few keep
# it busy; the turns themselves run concurrently on the runtime's event loop (WORKER_MAX_TURNS).
CLAIMING_THREADS = 8


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(ctx: typer.Context, loglevel: str = "info",
           max_turns: int | None = typer.Option(None, help="Turns run at once (defaults to WORKER_MAX_TURNS, 1000)"),
           supervised: bool = typer.Option(True, "--supervised/--unsupervised",
                                           help="Run the worker as a child process, started again if it exits on "
                                                "its own (Celery can, when Redis goes away)")) -> None:
    """Run a worker: a Celery consumer feeding this process's turn runtime (extra arguments go to Celery)."""
    if supervised:
        from agent_sessions.dev import CLI
        from agent_sessions.supervise import supervise

        configure_logging(get_settings())
        options = ["--loglevel", loglevel, *(["--max-turns", str(max_turns)] if max_turns is not None else [])]
        raise typer.Exit(supervise([*CLI, "worker", "--unsupervised", *options, *ctx.args]))
    from worker.celery_app import app

    if max_turns is not None:
        os.environ["WORKER_MAX_TURNS"] = str(max_turns)
        get_settings.cache_clear()
    settings = get_settings()
    app.worker_main(["worker", "-Q", settings.celery_queue, "--pool", "threads", "--concurrency",
                     str(CLAIMING_THREADS), "--loglevel", loglevel, "--without-gossip", "--without-mingle",
                     *ctx.args])


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
def dev(port: int = typer.Option(None, help="Defaults to PORT (3000)")) -> None:
    """Everything in one command: SQLite, an embedded Redis, the API, a worker and the beat."""
    from agent_sessions.dev import run_everything

    settings = get_settings()
    configure_logging(settings)
    run_everything(settings, port or settings.port)


@cli.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                               "help_option_names": []})
def chat(ctx: typer.Context) -> None:
    """Chat with an agent in the terminal: the client's `agent-sessions-chat`, by default with this server
    (`--help` lists its options)."""
    from agent_sessions_client.chat import main as chat_main

    chat_main(ctx.args, prog="agent-sessions chat", default_url=f"http://localhost:{get_settings().port}")


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
