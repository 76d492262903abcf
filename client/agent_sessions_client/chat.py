"""`agent-sessions-chat` (also `agent-sessions chat`): talk to an agent from the terminal, through the client.

Replies stream word by word when the server streams (SSE); otherwise the whole reply is printed when it
arrives. Commands: /history, /state, /end (end the session and leave), /quit (leave it open), /help.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
import uuid
from collections.abc import Sequence

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agent_sessions_client.errors import ApiError, SessionClosed
from agent_sessions_client.events import MessageChunk, MessageCompleted, MessageFailed
from agent_sessions_client.schemas import AgentSummary, SessionPublic
from agent_sessions_client.sessions import DEFAULT_URL, SessionsClient

HELP = "/history  /state  /end (end the session)  /quit (leave it open)  /help"


class Chat:
    def __init__(self, client: SessionsClient, console: Console, agent: AgentSummary, user_id: str) -> None:
        self.client = client
        self.console = console
        self.agent = agent
        self.user_id = user_id
        self.session: SessionPublic | None = None

    def start_session(self) -> None:
        self.session = self.client.create_session(self.agent.id, self.user_id, metadata={"platform": "terminal"})
        self.console.print(f"[dim]session {self.session.session_id} with {escape(self.agent.name)}[/dim]")

    def run(self) -> None:
        self.console.print(f"[bold]Chatting with {escape(self.agent.name)}.[/bold] [dim]{HELP}[/dim]")
        self.start_session()
        while True:
            try:
                line = self.console.input("[bold cyan]you>[/] ").strip()
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                return
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    return
                continue
            self.say(line)

    def command(self, line: str) -> bool:
        """Run a slash command; False when the chat should stop."""
        name = line.split()[0].lower()
        assert self.session is not None
        sid = self.session.session_id
        if name == "/quit":
            return False
        if name == "/end":
            self.client.end(sid)
            self.console.print(f"[yellow]session {sid} ended[/yellow]")
            return False
        if name == "/history":
            self.show_history(sid)
        elif name == "/state":
            self.show_state(self.client.get_session(sid))
        else:
            self.console.print(f"[dim]{HELP}[/dim]")
        return True

    def say(self, text: str) -> None:
        assert self.session is not None
        try:
            self.stream_reply(self.session.session_id, text)
        except SessionClosed as closed:
            self.console.print(f"[yellow]{escape(closed.message)}: starting a new session[/yellow]")
            self.start_session()
            self.stream_reply(self.session.session_id, text)
        except ApiError as error:
            self.console.print(f"[red]{escape(error.code or 'error')}: {escape(error.message)}[/red]")

    def stream_reply(self, session_id: uuid.UUID, text: str) -> None:
        label = f"[bold magenta]{escape(self.agent.name)}>[/] "
        started = False
        for event in self.client.stream(session_id, text):
            if isinstance(event, MessageChunk):
                if not started:
                    self.console.print(label, end="")
                    started = True
                self.console.print(escape(event.delta), end="", soft_wrap=True)
            elif isinstance(event, MessageCompleted):
                if started:
                    self.console.print()
                else:
                    self.console.print(label + escape(event.message.content), soft_wrap=True)
            elif isinstance(event, MessageFailed):
                self.console.print(f"[red]the agent could not answer: {escape(str(event.error.get('message')))}[/red]")

    def show_history(self, session_id: uuid.UUID) -> None:
        messages = list(self.client.history(session_id))
        if not messages:
            self.console.print("[dim](no messages yet)[/dim]")
        for message in reversed(messages):
            who = escape(self.agent.name) if message.is_agent else "you"
            self.console.print(f"[dim]{message.seq:>3}[/dim] [bold]{who}:[/bold] {escape(message.content)}")

    def show_state(self, session: SessionPublic) -> None:
        state = session.state
        table = Table(show_header=False, box=None)
        table.add_row("status", session.status)
        table.add_row("time left", f"{session.time_remaining // 60000} min {session.time_remaining // 1000 % 60} s")
        table.add_row("messages", str(session.message_count))
        table.add_row("stage", state.stage)
        table.add_row("sentiment", f"{state.sentiment.label} ({state.sentiment.score})")
        table.add_row("engagement", f"{state.engagement.level} ({state.engagement.score})")
        table.add_row("topics", ", ".join(topic.topic for topic in state.topics) or "-")
        table.add_row("confidence", str(state.agent_confidence))
        self.console.print(table)


def pick_agent(client: SessionsClient, name: str | None) -> AgentSummary:
    agents = client.list_agents()
    if not agents:
        raise LookupError("the server has no agents")
    if name is None:
        return agents[0]
    for agent in agents:
        if agent.name.lower() == name.lower():
            return agent
    raise LookupError(f"no agent named {name!r} (known: {', '.join(a.name for a in agents)})")


def default_user_id() -> str:
    user = re.sub(r"[^A-Za-z0-9_.:@-]", "", getpass.getuser() or "")[:64]
    return f"terminal-{user or uuid.uuid4().hex[:8]}"


def run_chat(url: str, agent_name: str | None, user_id: str | None, api_key: str | None, token: str | None,
             console: Console | None = None) -> None:
    console = console or Console()
    with SessionsClient(url, api_key=api_key, token=token) as client:
        Chat(client, console, pick_agent(client, agent_name), user_id or default_user_id()).run()


def main(argv: Sequence[str] | None = None, *, prog: str = "agent-sessions-chat",
         default_url: str = DEFAULT_URL) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=(
        "Chat with an agent in the terminal (streamed replies; /history, /state, /end, /quit)."))
    parser.add_argument("--agent", help="agent name (default: the first agent)")
    parser.add_argument("--url", default=default_url, help="server URL (default: %(default)s)")
    parser.add_argument("--user", help="your user id (default: terminal-<login>)")
    parser.add_argument("--api-key", default=os.environ.get("AGENT_SESSIONS_API_KEY"),
                        help="server API key, sent as X-API-KEY (default: AGENT_SESSIONS_API_KEY)")
    parser.add_argument("--token", default=os.environ.get("AGENT_SESSIONS_TOKEN"),
                        help="user bearer token (default: AGENT_SESSIONS_TOKEN)")
    args = parser.parse_args(argv)
    try:
        run_chat(args.url, args.agent, args.user, args.api_key, args.token)
    except (LookupError, ApiError, httpx.HTTPError) as error:
        print(f"chat: {error}", file=sys.stderr)
        raise SystemExit(1) from error


if __name__ == "__main__":
    main()
