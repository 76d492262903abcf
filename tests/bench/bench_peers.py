"""Peers doing the same echo job: Agno AgentOS and the LangGraph dev server (in-memory) next to our queue and
inline paths, all measured in this run: blocking round trip (one client, sequential) and throughput at 16 sessions.

Run from the repository root: .venv/bin/python tests/bench/bench_peers.py [--messages 300] [--seconds 10]
The peers are pip-installed into their own virtual environment (tests/bench/.peers-venv, git-ignored, reused),
never into the project's; a peer that cannot be installed or started is skipped with a note. Everything stays on
127.0.0.1: the peers' model is a local OpenAI-compatible echo endpoint started here, and their telemetry, tracing
and version checks are switched off.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_roundtrip  # type: ignore[import-not-found]
import bench_throughput  # type: ignore[import-not-found]
import httpx
from common import print_table, scratch_postgres, stack, summary  # type: ignore[import-not-found]

from tests.support.processes import free_port, wait_until

HERE = Path(__file__).resolve().parent
PEERS_VENV = HERE / ".peers-venv"
PEER_REQUIREMENTS = {
    "agno": ["agno[os]", "openai"],  # "os": what AgentOS needs (FastAPI, uvicorn, multipart, async SQLAlchemy)
    "langgraph": ["langgraph-cli[inmem]", "langgraph", "openai"],
}
PIP_TIMEOUT_S = 900
START_TIMEOUT_S = 180
QUIET_PEERS_ENV = {
    "AGNO_TELEMETRY": "false",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}
AGNO_APP = '''
import os

from agno.agent import Agent
from agno.db.sqlite import SqliteDb
from agno.models.openai.like import OpenAILike
from agno.os import AgentOS

agent = Agent(id="echo", name="echo", telemetry=False,
              model=OpenAILike(id=os.environ["PEER_MODEL"], base_url=os.environ["PEER_MODEL_URL"], api_key="unused"),
              db=SqliteDb(db_file=os.environ["AGNO_DB_FILE"]))
app = AgentOS(agents=[agent], telemetry=False).get_app()
'''
LANGGRAPH_GRAPH = '''
import operator
import os
from typing import Annotated, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from openai import AsyncOpenAI

model = AsyncOpenAI(base_url=os.environ["PEER_MODEL_URL"], api_key="unused")


class State(TypedDict):
    messages: Annotated[list[dict], operator.add]


async def reply(state: State) -> dict:
    completion = await model.chat.completions.create(model=os.environ["PEER_MODEL"], messages=state["messages"][-1:])
    return {"messages": [{"role": "assistant", "content": completion.choices[0].message.content}]}


async def streamed_reply(state: State) -> dict:
    """The model's tokens as they come, to clients of `stream_mode: custom`, then the whole reply."""
    write, parts = get_stream_writer(), []
    stream = await model.chat.completions.create(model=os.environ["PEER_MODEL"], messages=state["messages"][-1:],
                                                 stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
            write(chunk.choices[0].delta.content)
    return {"messages": [{"role": "assistant", "content": "".join(parts)}]}


graph = StateGraph(State).add_node("reply", reply).add_edge(START, "reply").add_edge("reply", END).compile()
streaming_graph = (StateGraph(State).add_node("reply", streamed_reply).add_edge(START, "reply")
                   .add_edge("reply", END).compile())
'''


# --- the echo model: a tiny OpenAI-compatible chat-completions endpoint ---------------------------------------

def _echo_text(body: dict[str, Any]) -> str:
    content = next((m.get("content") for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
    if isinstance(content, list):  # content parts
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return f"echo: {content}"


def _completion(body: dict[str, Any]) -> tuple[bytes, bytes]:
    """(content type, body) of the answer: one JSON completion, or the same text as a server-sent event stream."""
    text = _echo_text(body)
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "created": int(time.time()), "model": body.get("model", "echo")}
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    if not body.get("stream"):
        return b"application/json", json.dumps({**base, "object": "chat.completion", "usage": usage, "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}).encode()
    head, _, tail = text.partition(" ")
    deltas = [{"role": "assistant", "content": head + " "}, {"content": tail}, {}]
    chunks = [{**base, "object": "chat.completion.chunk",
               "choices": [{"index": 0, "delta": delta, "finish_reason": None if delta else "stop"}]}
              for delta in deltas]
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    events = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]
    return b"text/event-stream", "".join(events).encode()


async def _serve_echo_model(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                length = next((int(line.split(b":")[1]) for line in lines
                               if line.lower().startswith(b"content-length")), 0)
                payload = await reader.readexactly(length)
                method, path = lines[0].split(b" ")[:2]
                if method == b"POST" and path.endswith(b"/chat/completions"):
                    status, (content_type, body) = b"200 OK", _completion(json.loads(payload or b"{}"))
                else:
                    status, content_type, body = b"404 Not Found", b"application/json", b'{"error":"not found"}'
                writer.write(b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s"
                             % (status, content_type, len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def _run_echo_model(port: int) -> None:
    asyncio.run(_serve_echo_model(port))


@contextlib.contextmanager
def echo_model() -> Iterator[str]:
    """The echo model's OpenAI base URL, served by a child process for the duration."""
    port = free_port()
    process = multiprocessing.Process(target=_run_echo_model, args=(port,), daemon=True)
    process.start()
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until(lambda: _answers(f"{url}/chat/completions", json={"messages": []}), 20, "the echo model")
        reply = httpx.post(f"{url}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        assert reply.json()["choices"][0]["message"]["content"] == "echo: hi", reply.text
        yield url
    finally:
        process.terminate()
        process.join(10)


def _answers(url: str, **request: Any) -> bool:
    try:
        return httpx.request("POST" if request else "GET", url, timeout=2, **request).status_code < 500
    except httpx.HTTPError:
        return False


# --- the peers' virtual environment and processes ------------------------------------------------------------

def install_peers(names: list[str]) -> dict[str, str]:
    """Install each peer into the peers' venv (reused when already there); {peer: why it is skipped}."""
    skipped: dict[str, str] = {}
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating the peers' virtual environment {PEERS_VENV}", flush=True)
        created = subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], capture_output=True, text=True)
        if created.returncode != 0:
            return {name: f"cannot create a virtual environment: {created.stderr.strip()[-300:]}" for name in names}
    for name in names:
        marker = PEERS_VENV / f".installed-{name}"
        requirements = PEER_REQUIREMENTS[name]
        if marker.exists() and marker.read_text() == " ".join(requirements):
            continue
        print(f"installing {name} into the peers' venv: {' '.join(requirements)}", flush=True)
        try:
            result = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *requirements],
                                    capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            skipped[name] = f"pip install took over {PIP_TIMEOUT_S} s"
            continue
        if result.returncode != 0:
            skipped[name] = f"pip install failed: {' / '.join(result.stderr.strip().splitlines()[-2:])[-300:]}"
            continue
        marker.write_text(" ".join(requirements))
    return skipped


def peer_version(package: str) -> str:
    result = subprocess.run([str(PEERS_VENV / "bin" / "python"), "-c",
                             f"import importlib.metadata as m; print(m.version({package!r}))"],
                            capture_output=True, text=True)
    return result.stdout.strip() or "?"


class PeerFailed(Exception):
    """A peer that could not be started or did not do the echo job: skipped with this note."""


@dataclass
class PeerServer:
    base_url: str
    process: subprocess.Popen[bytes]  # the peer's main process (its children are in its process group)


@contextlib.contextmanager
def peer_process(name: str, command: list[str], cwd: Path, env: dict[str, str],
                 ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """A peer server in its own process group (so its children stop with it), ready when `ready_url` answers."""
    log_path = cwd / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **QUIET_PEERS_ENV, **env},
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(ready_url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
                raise PeerFailed(f"{name} did not start (exit code {process.poll()}); log tail:\n{tail}")
            time.sleep(0.2)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --- how each peer is asked for one reply ---------------------------------------------------------------------

def agno_request(session_id: str, n: int) -> dict[str, Any]:
    return {"url": "/agents/echo/runs",
            "data": {"message": f"message {n}", "stream": "false", "session_id": session_id, "user_id": "bench"}}


def langgraph_request(thread_url: str, n: int) -> dict[str, Any]:
    return {"url": f"{thread_url}/runs/wait",
            "json": {"assistant_id": "echo", "input": {"messages": [{"role": "user", "content": f"message {n}"}]}}}


def agno_sessions(base_url: str, count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]  # Agno creates a session on its first run


def langgraph_threads(base_url: str, count: int) -> list[str]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        return [f"/threads/{http.post('/threads', json={}).json()['thread_id']}" for _ in range(count)]


@dataclass
class Peer:
    name: str
    package: str  # whose version is reported
    serve: Callable[[Path, str], contextlib.AbstractContextManager[PeerServer]]  # (work dir, model URL)
    sessions: Callable[[str, int], list[str]]  # (base URL, count) -> what `request` takes to address a session
    request: Callable[[str, int], dict[str, Any]]  # (session, n) -> httpx arguments asking for one reply
    messages: int
    warmup: int
    note: str


def sequential(base_url: str, peer: Peer, messages: int, warmup: int) -> list[float]:
    """Round trips of one client sending to one session; the first reply must be the echo model's."""
    session = peer.sessions(base_url, 1)[0]
    timings = []
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for n in range(warmup + messages):
            started = time.perf_counter()
            response = http.post(**peer.request(session, n))
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200 or (n == 0 and f"echo: message {n}" not in response.text):
                raise PeerFailed(f"{peer.name} answered {response.status_code}: {response.text[:300]}")
            if n >= warmup:
                timings.append(elapsed)
    return timings


@contextlib.contextmanager
def serve_agno(workdir: Path, model_url: str, model: str = "echo") -> Iterator[PeerServer]:
    """Agent `echo` calling `model` at `model_url`."""
    (workdir / "agno_app.py").write_text(AGNO_APP)
    port = free_port()
    command = [str(PEERS_VENV / "bin" / "python"), "-m", "uvicorn", "agno_app:app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--no-access-log"]
    env = {"PEER_MODEL_URL": model_url, "PEER_MODEL": model, "AGNO_DB_FILE": str(workdir / "agno.db")}
    with peer_process("agno", command, workdir, env, f"http://127.0.0.1:{port}/health") as process:
        yield PeerServer(f"http://127.0.0.1:{port}", process)


@contextlib.contextmanager
def serve_langgraph(workdir: Path, model_url: str, jobs: int, model: str = "echo") -> Iterator[PeerServer]:
    """Graphs `echo` (one model call) and `stream` (the same call streamed to `stream_mode: custom`)."""
    (workdir / "echo_graph.py").write_text(LANGGRAPH_GRAPH)
    (workdir / "langgraph.json").write_text(json.dumps({"dependencies": ["."], "graphs": {
        "echo": "./echo_graph.py:graph", "stream": "./echo_graph.py:streaming_graph"}}))
    port = free_port()
    command = [str(PEERS_VENV / "bin" / "langgraph"), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1",
               "--port", str(port), "--config", str(workdir / "langgraph.json"), "--n-jobs-per-worker", str(jobs),
               "--server-log-level", "WARNING"]
    env = {"PEER_MODEL_URL": model_url, "PEER_MODEL": model}
    with peer_process("langgraph", command, workdir, env, f"http://127.0.0.1:{port}/ok") as process:
        yield PeerServer(f"http://127.0.0.1:{port}", process)


# --- the run ---------------------------------------------------------------------------------------------------

def measure_ours(messages: int, warmup: int, concurrency: int, seconds: float) -> tuple[dict, dict]:
    """Our inline and queue paths, configured as bench_roundtrip and bench_throughput configure them."""
    round_trip, throughput = {}, {}
    with scratch_postgres() as database_url:
        with stack(database_url, "peers-inline", PROCESSING="inline") as inline:
            round_trip["ours: inline (no queue)"] = summary(bench_roundtrip.measure(inline.base_url, messages, warmup))
            throughput["ours: inline (no queue)"] = _throughput(inline.base_url, bench_throughput.sessions,
                                                                bench_throughput.our_message, concurrency, seconds)
        with stack(database_url, "peers-queue-solo") as queued:
            round_trip["ours: queue (solo worker)"] = summary(bench_roundtrip.measure(queued.base_url, messages,
                                                                                      warmup))
        for workers in (1, 2):
            with stack(database_url, f"peers-queue-{workers}", workers=workers) as queued:
                throughput[f"ours: queue, {workers} worker{'s' * (workers > 1)}"] = _throughput(
                    queued.base_url, bench_throughput.sessions, bench_throughput.our_message, concurrency, seconds)
    return round_trip, throughput


def _throughput(base_url: str, sessions: Callable[[str, int], list[str]],
                request: Callable[[str, int], dict[str, Any]], concurrency: int, seconds: float) -> tuple[float, ...]:
    targets = sessions(base_url, concurrency)
    bench_throughput.load(base_url, targets, 2, request)  # warm-up
    return bench_throughput.load(base_url, targets, seconds, request)


def measure_peer(peer: Peer, model_url: str, workdir: Path, args: argparse.Namespace,
                 round_trip: dict, throughput: dict, skipped: dict[str, str]) -> None:
    label = f"{peer.name} ({peer.package} {peer_version(peer.package)})"
    try:
        with peer.serve(workdir, model_url) as server:
            base_url = server.base_url
            round_trip[label] = summary(sequential(base_url, peer, peer.messages, peer.warmup))
            throughput[label] = _throughput(base_url, peer.sessions, peer.request, args.concurrency, args.seconds)
    except (PeerFailed, httpx.HTTPError, queue.Empty) as failure:
        skipped[peer.name] = f"{type(failure).__name__}: {failure}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300, help="sequential messages (as bench_roundtrip)")
    parser.add_argument("--langgraph-messages", type=int, default=100,
                        help="fewer for LangGraph: a lone run waits 0.5-1 s for its in-memory queue")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=10, help="per throughput cell")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--peers", nargs="*", default=list(PEER_REQUIREMENTS), choices=list(PEER_REQUIREMENTS))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups on SIGTERM too
    jobs = max(10, args.concurrency)  # langgraph dev runs 10 at once by default: not the limit at 16 sessions
    peers = {
        "agno": Peer("agno", "agno", serve_agno, agno_sessions, agno_request, args.messages, args.warmup,
                     "Agno AgentOS (FastAPI, one uvicorn process), SqliteDb session storage, OpenAILike echo model"),
        "langgraph": Peer("langgraph", "langgraph-api", lambda workdir, url: serve_langgraph(workdir, url, jobs),
                          langgraph_threads, langgraph_request, args.langgraph_messages, min(args.warmup, 5),
                          f"langgraph dev (in-memory runtime, --n-jobs-per-worker {jobs}), a one-node graph calling "
                          "the echo model. Its queue sleeps 0.5 s between polls when idle and then takes only runs "
                          "created before that sleep began (hard-coded in langgraph-runtime-inmem, no setting), so "
                          "a lone run waits 0.5-1.0 s for the queue"),
    }

    skipped = install_peers(args.peers)
    load_before = os.getloadavg()[0]
    round_trip, throughput = measure_ours(args.messages, args.warmup, args.concurrency, args.seconds)
    with echo_model() as model_url, tempfile.TemporaryDirectory(prefix="bench-peers-") as workdir:
        for name in args.peers:
            if name not in skipped:
                (Path(workdir) / name).mkdir()
                measure_peer(peers[name], model_url, Path(workdir) / name, args, round_trip, throughput, skipped)
    report(round_trip, throughput, args, peers, skipped)
    print(f"Machine: {os.cpu_count()} cores, 1-minute load average {load_before:.1f} before and "
          f"{os.getloadavg()[0]:.1f} after the run (other loads on the machine inflate every figure).")


def report(round_trip: dict, throughput: dict, args: argparse.Namespace, peers: dict[str, Peer],
           skipped: dict[str, str]) -> None:
    inline = round_trip["ours: inline (no queue)"]
    agno_rt = next((r for name, r in round_trip.items() if name.startswith("agno")), None)
    print_table("Blocking round trip, echo job, one client sending sequentially (ms)",
                ["system", "n", "p50", "p99", "p50 / inline", "Agno p50 / p50"],
                [[name, r["n"], r["p50"], r["p99"], r["p50"] / inline["p50"],
                  agno_rt["p50"] / r["p50"] if agno_rt else "-"] for name, r in round_trip.items()])
    agno_tp = next((t for name, t in throughput.items() if name.startswith("agno") and t[0] > 0), None)
    print_table(f"Throughput at {args.concurrency} concurrent sessions, {args.seconds:.0f} s per cell",
                ["system", "msg/s", "p50 ms", "p99 ms", "msg/s / Agno's"],
                [[name, rate, p50, p99, rate / agno_tp[0] if agno_tp else "-"]
                 for name, (rate, p50, p99) in throughput.items()])
    print("\nOurs: round trip with a solo-pool worker (as bench_roundtrip), throughput with threads -c 4 "
          "(as bench_throughput). The peers call the echo model over loopback HTTP; our echo agent runs in-process.")
    for name in args.peers:
        print(f"- {name}: {'SKIPPED: ' + skipped[name] if name in skipped else peers[name].note}")
    if agno_rt:
        speedup = agno_rt["p50"] / round_trip["ours: queue (solo worker)"]["p50"]
        print(f"Goal: queue round trip p50 at least 2x faster than Agno's: {speedup:.2f}x "
              f"({'met' if speedup >= 2 else 'NOT met'})")
    if agno_tp:
        ratio = throughput["ours: queue, 1 worker"][0] / agno_tp[0]
        print(f"Goal: queue throughput (1 worker) at {args.concurrency} sessions at least 3x Agno's: {ratio:.2f}x "
              f"({'met' if ratio >= 3 else 'NOT met'})")


if __name__ == "__main__":
    main()
