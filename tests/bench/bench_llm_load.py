"""Model-backed agents at scale: N sessions each send one message at the same moment to an `openai` agent whose
model is the load model server (tests/support/load_model.py: 0.3 s to the first token, then 40 tokens 25 ms
apart, so one reply takes 1.275 s by itself; and a slow model, 40 tokens 250 ms apart, at N = 1,000).

Run from the repository root: .venv/bin/python tests/bench/bench_llm_load.py [--n 40 100 300] [--modes sse]
    [--systems floor ours shipped c100 agno langgraph] [--worker-args "--pool threads --concurrency 100"]

Systems, all in the same run, against the same model server:
- floor: a lean asyncio client calling the model server directly: the best this machine does for the load.
- ours: this checkout, one API process and one worker started with --worker-args (default: the CLI's defaults
  at log level warning, like `agent-sessions dev`), --env settings for both.
- shipped / c100: the thread-per-message path of commit 0be0bb8 (extracted with `git archive`, run with this
  venv), worker as `agent-sessions dev` starts it (--concurrency 4) and with --concurrency 100.
- agno / langgraph: Agno AgentOS and the LangGraph dev server (in-memory, --n-jobs-per-worker raised to N)
  from the peers' venv (see bench_peers.py), calling the same model server with the openai SDK.
Modes: blocking (our transport "http"; the peers' non-streaming runs) and sse (our transport "sse"; Agno's
stream=true; LangGraph's runs/stream with stream_mode custom).

Each row is one run of N sends on fresh processes. docs/benchmarks.md ("Model-backed load") says what each
column means.
The load client is a process of its own whose CPU is reported; the model server's CPU is not counted anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_peers  # type: ignore[import-not-found]
import httpx
import psutil
from common import (  # type: ignore[import-not-found]
    REPO_ROOT,
    RedisServer,
    percentile,
    print_table,
    redis_server,
    scratch_postgres,
    source_tree_of,
    stack,
)
from load_client import LoadClient, Request, Run  # type: ignore[import-not-found]

from tests.support import load_model
from tests.support.load_model import Timing, token_text

BASELINE_COMMIT = "0be0bb8"
OUR_ROLES = ("api", "worker", "redis", "postgres")
MODES = ("blocking", "sse")
SYSTEMS = ("floor", "ours", "shipped", "c100", "agno", "langgraph")
SETUP_THREADS = 8  # sessions are created before the run, a few at a time
DEFAULT_WORKER_ARGS = "--loglevel warning"  # otherwise the CLI's defaults, as `agent-sessions dev` runs it
SAMPLE_SECONDS = 0.25  # CPU and memory readings during a run
DISCOVER_SECONDS = 1.0  # how often the processes of each role are looked up again (new Postgres backends)


@dataclass(frozen=True)
class Load:
    n: int
    timing: Timing
    slow: bool = False

    @property
    def model(self) -> str:
        t = self.timing
        return f"load-ttft{t.ttft_ms:g}-n{t.tokens}-gap{t.gap_ms:g}-stamp"

    @property
    def label(self) -> str:
        return f"{self.n}{' slow' if self.slow else ''}"


@dataclass
class Cell:
    """One run of N sends on one system in one mode: the figures of one row."""

    system: str
    mode: str
    load: Load
    run: Run | None = None
    model_stats: dict[str, Any] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)  # by role, during the run
    rss_growth_kb: float | None = None  # worker (or peer) resident memory: peak during the run minus before
    note: str = ""

    @property
    def answered(self) -> int:
        return sum(o.answered for o in self.run.outcomes) if self.run else 0

    @property
    def complete(self) -> bool:
        return self.answered == self.load.n

    @property
    def ideal_over_actual(self) -> float:
        """One reply's own time over the wall time of all N; when some were not answered by the deadline, the
        deadline stands in for the wall time, so the figure is an upper bound (printed with "<")."""
        if not self.run:
            return float("nan")
        return self.load.timing.seconds / self.run.wall_s

    def latencies_ms(self) -> list[float]:
        return [o.finished_s * 1000 for o in self.run.outcomes if o.answered] if self.run else []

    def first_token_ms(self) -> list[float]:
        if not self.run or self.mode != "sse":
            return []
        return [o.first_token_delay_ms for o in self.run.outcomes
                if o.answered and not math.isnan(o.first_token_delay_ms)]

    @property
    def tokens(self) -> int:
        return int(self.model_stats.get("tokens", 0))


# --- readings: CPU by role and resident memory, sampled while a run goes ---------------------------------------

def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def postgres_backends(database: str) -> list[psutil.Process]:
    """The server processes serving connections to `database` (their title names it)."""
    found = []
    for process in psutil.process_iter(["name"]):
        if (process.info["name"] or "").startswith("postgres"):
            with contextlib.suppress(psutil.Error):
                if f" {database} " in " ".join(process.cmdline()) + " ":
                    found.append(process)
    return found


class Meter:
    """CPU seconds used by each role's processes between `start` and `stop`, and the peak resident memory of one
    role. Processes are looked up again every second (a pool that opens a Postgres connection mid-run adds a
    backend; a process first seen mid-run counts from zero, as it started during the run)."""

    def __init__(self, roles: dict[str, Callable[[], list[psutil.Process]]], memory_role: str | None = None) -> None:
        self.roles = roles
        self.memory_role = memory_role
        self.processes: dict[str, list[psutil.Process]] = {}
        self.first: dict[tuple[int, float], float] = {}
        self.last: dict[tuple[int, float], tuple[str, float]] = {}
        self.rss_before = self.rss_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def start(self) -> None:
        self._discover()
        self._read(first=True)
        self.rss_before = self.rss_peak
        self._thread.start()

    def stop(self) -> tuple[dict[str, float], float]:
        """(CPU seconds by role, resident memory growth in KB of the memory role)."""
        self._stop.set()
        self._thread.join()
        self._discover()
        self._read()
        used = dict.fromkeys(self.roles, 0.0)
        for key, (role, cpu) in self.last.items():
            used[role] += cpu - self.first.get(key, 0.0)
        return used, (self.rss_peak - self.rss_before) / 1024

    def _sample_until_stopped(self) -> None:
        discovered = time.monotonic()
        while not self._stop.wait(SAMPLE_SECONDS):
            if time.monotonic() - discovered >= DISCOVER_SECONDS:
                self._discover()
                discovered = time.monotonic()
            self._read()

    def _discover(self) -> None:
        self.processes = {role: find() for role, find in self.roles.items()}

    def _read(self, first: bool = False) -> None:
        rss = 0
        for role, processes in self.processes.items():
            for process in processes:
                try:
                    with process.oneshot():
                        times = process.cpu_times()
                        key = (process.pid, process.create_time())
                        if role == self.memory_role:
                            rss += process.memory_info().rss
                except psutil.Error:
                    continue  # exited since: its CPU up to the last reading counts
                if first:
                    self.first[key] = times.user + times.system
                self.last[key] = (role, times.user + times.system)
        self.rss_peak = max(self.rss_peak, rss) if not first else rss


def measure(cell: Cell, requests: list[Request], deadline_s: float, model: load_model.LoadModelProcess,
            meter: Meter | None) -> Cell:
    """Connect the client, take the "before" readings, send everything at once, take the "after" readings."""
    client = LoadClient(requests, deadline_s)
    client.prepare()
    model.reset_stats()
    if meter:
        meter.start()
    try:
        cell.run = client.go()
    finally:
        if meter:
            cell.cpu_s, growth_kb = meter.stop()
            cell.rss_growth_kb = growth_kb if meter.memory_role else None
    cell.model_stats = model.stats()
    if cell.answered < cell.load.n:
        failures = [o for o in cell.run.outcomes if not o.answered]
        cell.note = (f"{len(failures)} not answered; first: {failures[0].status} {failures[0].error} "
                     f"{failures[0].body_head[:160]!r}")
    return cell


# --- the systems ------------------------------------------------------------------------------------------------

def floor_cell(load: Load, model: load_model.LoadModelProcess, deadline_s: float) -> Cell:
    body = json.dumps({"model": load.model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    requests = [Request(f"{model.base_url}/chat/completions", body, ok_marker=b"data: [DONE]")] * load.n
    return measure(Cell("floor", "sse", load), requests, deadline_s, model, None)


@dataclass(frozen=True)
class OurSystem:
    name: str
    worker_args: list[str]
    commit: str | None = None  # None: this checkout
    env: dict[str, str] = field(default_factory=dict)
    max_n: int | None = None


def create_agent(http: httpx.Client, load: Load, model_url: str) -> str:
    character = {"name": f"load-{uuid.uuid4().hex[:8]}", "provider": "openai",
                 "settings": {"model": {"name": load.model, "baseUrl": model_url, "apiKeyEnv": None}}}
    response = http.post("/api/agents", json=character)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def create_sessions(base_url: str, agent_id: str, count: int) -> list[str]:
    with httpx.Client(base_url=base_url, timeout=60) as http, ThreadPoolExecutor(SETUP_THREADS) as pool:
        def create(n: int) -> str:
            response = http.post("/api/messaging/sessions", json={"agentId": agent_id, "userId": f"bench-{n}"})
            assert response.status_code == 201, response.text
            return response.json()["sessionId"]
        return list(pool.map(create, range(count)))


def our_requests(base_url: str, sessions: list[str], mode: str) -> list[Request]:
    transport = "http" if mode == "blocking" else "sse"
    marker = b'"isAgent":true' if mode == "blocking" else b"event: done"
    return [Request(f"{base_url}/api/messaging/sessions/{sid}/messages",
                    json.dumps({"content": f"hello {n}", "transport": transport}).encode(),
                    ok_statuses=(201,) if mode == "blocking" else (200,), ok_marker=marker)
            for n, sid in enumerate(sessions)]


def our_cell(system: OurSystem, database_url: str, tree: Path | None, redis: RedisServer, load: Load, mode: str,
             model: load_model.LoadModelProcess, deadline_s: float) -> Cell:
    """A fresh API and worker (their own Redis namespace and queue), an agent on the load model, N sessions."""
    cell = Cell(system.name, mode, load)
    env = {"REPLY_WAIT_SECONDS": str(deadline_s + 5), **system.env}
    name = f"llm-{system.name}-{load.n}-{mode}-{uuid.uuid4().hex[:4]}"
    with stack(database_url, name, redis_url=redis.url, worker_args=system.worker_args, source_tree=tree,
               **env) as running:
        try:
            with httpx.Client(base_url=running.base_url, timeout=deadline_s + 60) as http:
                agent = create_agent(http, load, model.base_url)
                sessions = create_sessions(running.base_url, agent, load.n + 1)
                warm_up = http.post(f"/api/messaging/sessions/{sessions.pop()}/messages", json={"content": "warm up"})
                assert warm_up.status_code == 201, f"warm-up answered {warm_up.status_code}: {warm_up.text[:300]}"
            api, worker = (next(s for s in running.services if s.name == role) for role in ("api", "worker"))
            database = database_url.rsplit("/", 1)[1]
            meter = Meter({"api": lambda: process_tree(api.process.pid),
                           "worker": lambda: process_tree(worker.process.pid),
                           "redis": lambda: process_tree(redis.pid),
                           "postgres": lambda: postgres_backends(database)}, memory_role="worker")
            return measure(cell, our_requests(running.base_url, sessions, mode), deadline_s, model, meter)
        except BaseException:
            print(running.logs(), file=sys.stderr)
            raise


def measure_ours(system: OurSystem, loads: list[Load], modes: list[str], args: argparse.Namespace,
                 model: load_model.LoadModelProcess, redis: RedisServer) -> list[Cell]:
    cells = []
    tree_context = source_tree_of(system.commit) if system.commit else contextlib.nullcontext(None)
    with tree_context as tree, scratch_postgres(tree) as database_url:
        for load in loads:
            if system.max_n is not None and load.n > system.max_n:
                continue
            for mode in modes:
                for _ in range(args.repeat):
                    cells.append(report_cell(our_cell(system, database_url, tree, redis, load, mode, model,
                                                      deadline_for(load, args))))
    return cells


@dataclass(frozen=True)
class PeerSetup:
    name: str
    start: Callable[[Path, str, str, int], contextlib.AbstractContextManager[bench_peers.PeerServer]]
    sessions: Callable[[str, int], list[str]]
    requests: Callable[[str, list[str], str, Load], list[Request]]


def agno_requests(base_url: str, sessions: list[str], mode: str, load: Load) -> list[Request]:
    stream = "true" if mode == "sse" else "false"
    marker = b"event: RunCompleted" if mode == "sse" else b'"status":"COMPLETED"'
    return [Request(f"{base_url}/agents/echo/runs",
                    f"message=hello+{n}&stream={stream}&session_id={sid}&user_id=bench-{n}".encode(),
                    content_type="application/x-www-form-urlencoded", ok_marker=marker)
            for n, sid in enumerate(sessions)]


def langgraph_requests(base_url: str, threads: list[str], mode: str, load: Load) -> list[Request]:
    last_token = json.dumps(token_text(load.timing.tokens - 1)).encode()
    requests = []
    for n, thread in enumerate(threads):
        body: dict[str, Any] = {"input": {"messages": [{"role": "user", "content": f"hello {n}"}]}}
        if mode == "sse":  # the streaming graph sends each token as a `custom` event
            body.update(assistant_id="stream", stream_mode=["custom"])
            requests.append(Request(f"{base_url}{thread}/runs/stream", json.dumps(body).encode(),
                                    ok_marker=b"data: " + last_token))
        else:
            body.update(assistant_id="echo")
            requests.append(Request(f"{base_url}{thread}/runs/wait", json.dumps(body).encode(),
                                    ok_marker=b'"role":"assistant"'))
    return requests


def langgraph_threads(base_url: str, count: int) -> list[str]:
    with httpx.Client(base_url=base_url, timeout=60) as http, ThreadPoolExecutor(SETUP_THREADS) as pool:
        return list(pool.map(lambda _: f"/threads/{http.post('/threads', json={}).json()['thread_id']}", range(count)))


PEERS = {
    "agno": PeerSetup("agno", lambda workdir, url, model, jobs: bench_peers.serve_agno(workdir, url, model),
                      bench_peers.agno_sessions, agno_requests),
    "langgraph": PeerSetup("langgraph", lambda workdir, url, model, jobs: bench_peers.serve_langgraph(
        workdir, url, jobs, model), langgraph_threads, langgraph_requests),
}


def measure_peer(peer: PeerSetup, loads: list[Load], modes: list[str], args: argparse.Namespace,
                 model: load_model.LoadModelProcess, skipped: dict[str, str]) -> list[Cell]:
    """One peer server per model timing (its model is fixed when it starts), every N and mode on it."""
    cells = []
    jobs = max(load.n for load in loads)  # LangGraph runs this many at once: no fewer than any N
    for timing in dict.fromkeys(load.timing for load in loads):
        same_timing = [load for load in loads if load.timing == timing]
        try:
            with tempfile.TemporaryDirectory(prefix=f"bench-llm-{peer.name}-") as workdir, \
                    peer.start(Path(workdir), model.base_url, same_timing[0].model, jobs) as server:
                for load in same_timing:
                    for mode in modes:
                        for _ in range(args.repeat):
                            requests = peer.requests(server.base_url, peer.sessions(server.base_url, load.n + 1),
                                                     mode, load)
                            warm_up(requests.pop())
                            meter = Meter({peer.name: lambda: process_tree(server.process.pid)}, memory_role=peer.name)
                            cells.append(report_cell(measure(Cell(peer.name, mode, load), requests,
                                                             deadline_for(load, args), model, meter)))
        except (bench_peers.PeerFailed, httpx.HTTPError, RuntimeError) as failure:
            skipped[peer.name] = f"{type(failure).__name__}: {failure}"
    return cells


def warm_up(request: Request) -> None:
    """One send before the run, as our stacks get (first calls import and connect)."""
    response = httpx.post(request.url, content=request.body, headers={"content-type": request.content_type},
                          timeout=120)
    if response.status_code not in request.ok_statuses or request.ok_marker not in response.content:
        raise bench_peers.PeerFailed(f"warm-up answered {response.status_code}: {response.text[:300]}")


def same_code(commit: str) -> bool:
    """Whether this checkout's application code is that of `commit`."""
    return subprocess.run(["git", "-C", str(REPO_ROOT), "diff", "--quiet", commit, "--", "core", "api", "worker"],
                          capture_output=True).returncode == 0


def deadline_for(load: Load, args: argparse.Namespace) -> float:
    return max(args.deadline, 3 * load.timing.seconds)


# --- the report -------------------------------------------------------------------------------------------------

def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def bound(cell: Cell, value: float) -> str:
    """A ratio of a run that hit its deadline is at most what the deadline gives."""
    return fmt(value) if cell.complete or value != value else f"<{value:.2f}"


def total_per_token_us(cell: Cell) -> float | None:
    return sum(cell.cpu_s.values()) * 1e6 / cell.tokens if cell.cpu_s and cell.tokens else None


def per_token_us(cell: Cell, role: str) -> float | None:
    if role not in cell.cpu_s or not cell.tokens:
        return None
    return 1e6 * cell.cpu_s[role] / cell.tokens


def row(cell: Cell, floors: dict[Load, list[Cell]]) -> list[object]:
    latencies, first_token = cell.latencies_ms(), cell.first_token_ms()
    floor = [c.ideal_over_actual for c in floors.get(cell.load, [])]
    floor_ratio = sum(floor) / len(floor) if floor else float("nan")
    run = cell.run
    roles = OUR_ROLES if "api" in cell.cpu_s else tuple(cell.cpu_s)
    cpu = " / ".join(fmt(per_token_us(cell, role), 0) for role in roles) if cell.cpu_s else "-"
    total = total_per_token_us(cell)
    peak = cell.model_stats.get("peakInFlight", 0)
    memory = cell.rss_growth_kb / peak if cell.rss_growth_kb is not None and peak else None
    wall = f"{run.wall_s:.2f}" + (" (deadline)" if run and run.timed_out else "") if run else "-"
    return [cell.system, cell.mode, cell.load.label, f"{cell.answered}/{cell.load.n}", wall,
            bound(cell, cell.ideal_over_actual), bound(cell, cell.ideal_over_actual / floor_ratio),
            fmt(percentile(latencies, 50), 0), fmt(percentile(latencies, 99), 0),
            f"{fmt(percentile(first_token, 50), 1)} / {fmt(percentile(first_token, 99), 1)}" if first_token else "-",
            fmt(cell.model_stats.get("calls", 0) / cell.load.n), peak, cpu, fmt(total, 0), fmt(memory, 0),
            fmt(run.cpu_s if run else None)]


HEADER = ["system", "mode", "N", "answered", "wall s", "ideal/actual", "vs floor", "p50 ms", "p99 ms",
          "1st token→client p50 / p99 ms", "model calls per send", "peak calls",
          "CPU µs per token: API / worker / Redis / Postgres (peers: server)",
          "CPU µs per token, total", "KB per generation", "client CPU s"]


def report_cell(cell: Cell) -> Cell:
    """Print a finished row at once (a long run shows progress; the tables come at the end)."""
    print(f"  {cell.system:9} {cell.mode:8} N={cell.load.label:9} answered {cell.answered}/{cell.load.n} "
          f"ideal/actual {bound(cell, cell.ideal_over_actual)} model calls {cell.model_stats.get('calls', 0)} "
          f"peak {cell.model_stats.get('peakInFlight', 0)} {cell.note}", flush=True)
    return cell


def report(cells: list[Cell], args: argparse.Namespace, skipped: dict[str, str], notes: dict[str, str]) -> None:
    floors: dict[Load, list[Cell]] = {}
    for cell in cells:
        if cell.system == "floor":
            floors.setdefault(cell.load, []).append(cell)
    print_table(f"Model-backed sends at once, {os.cpu_count()} cores: one row per run", HEADER,
                [row(cell, floors) for cell in cells])
    loads = list(dict.fromkeys(cell.load for cell in cells))
    summary = []
    for system, mode in dict.fromkeys((cell.system, cell.mode) for cell in cells):
        ratios = []
        for load in loads:
            runs = [c for c in cells if (c.system, c.mode, c.load) == (system, mode, load) and c.run]
            shown = sorted({bound(c, c.ideal_over_actual) for c in runs})
            ratios.append("–".join(dict.fromkeys([shown[0], shown[-1]])) if shown else "-")
        totals = [total for c in cells if (c.system, c.mode) == (system, mode) and c.complete
                  and (total := total_per_token_us(c)) is not None]
        summary.append([f"{system}, {mode}", *ratios,
                        "–".join(dict.fromkeys([f"{min(totals):.0f}", f"{max(totals):.0f}"])) if totals else "-"])
    print_table("ideal/actual by N (one reply's own time / wall time of all N; 1.00 = as if alone; "
                "<x: not all answered by the deadline)",
                ["system, mode", *[f"N = {load.label}" for load in loads],
                 "CPU µs per token (runs answered in full)"], summary)
    for name, why in skipped.items():
        print(f"- {name}: SKIPPED: {why}")
    measured = {cell.system for cell in cells}
    for name, note in notes.items():
        if name in measured:
            print(f"- {name}: {note}")
    lag = max(cells, key=lambda c: c.model_stats.get("lagMeanMs", 0.0), default=None)
    if lag is not None:
        print(f"Load model server: sent its tokens {lag.model_stats.get('lagMeanMs', 0):.1f} ms late on average "
              f"at worst ({lag.system} {lag.mode} N={lag.load.label}; single worst "
              f"{max(c.model_stats.get('lagMaxMs', 0.0) for c in cells):.0f} ms). Late tokens lengthen every "
              "reply: a mean above a few ms means the model server was short of CPU in that run.")
    goals(cells, floors)


def goals(cells: list[Cell], floors: dict[Load, list[Cell]]) -> None:
    """The issue's goals for `ours`, as far as this run measured them."""
    def of(system: str, n: int, slow: bool = False) -> list[Cell]:
        return [c for c in cells if c.system == system and c.load.n == n and c.load.slow == slow]

    lines = []
    for cell in of("ours", 300):
        floor = [c.ideal_over_actual for c in floors.get(cell.load, [])]
        if floor:
            ratio = cell.ideal_over_actual / (sum(floor) / len(floor))
            lines.append(f"N = 300 {cell.mode}: ideal/actual {bound(cell, ratio)}x the floor's (goal >= 0.8x), "
                         f"model calls {cell.model_stats.get('calls')} for {cell.load.n} sends")
        if cell.mode == "sse" and cell.first_token_ms():
            lines.append(f"N = 300 sse: first token -> client p50 {percentile(cell.first_token_ms(), 50):.1f} ms "
                         "(goal <= 10 ms)")
    for cell in of("ours", 1000, slow=True):
        lines.append(f"N = 1000 slow {cell.mode}: {cell.answered}/{cell.load.n} answered, "
                     f"ideal/actual {bound(cell, cell.ideal_over_actual)} (goal >= 0.8, every message answered once)")
    ours = [c for c in cells if c.system == "ours" and c.cpu_s and c.tokens]
    complete = [total for c in ours if c.complete and (total := total_per_token_us(c)) is not None]
    if complete:
        lines.append(f"CPU per streamed token, all our processes: worst {max(complete):.0f} µs of the runs "
                     "answered in full (goal <= 60 µs)")
        memory = [c.rss_growth_kb / c.model_stats["peakInFlight"] for c in ours
                  if c.rss_growth_kb is not None and c.model_stats.get("peakInFlight")]
        if memory:
            lines.append(f"Worker memory per concurrent generation: worst {max(memory):.0f} KB (goal <= 100 KB)")
    for cell in of("ours", 300):
        peers = [c.ideal_over_actual for c in of("agno", 300) + of("langgraph", 300) if c.mode == cell.mode]
        if peers and max(peers) == max(peers):
            lines.append(f"N = 300 {cell.mode}: {bound(cell, cell.ideal_over_actual / max(peers))}x the better "
                         "peer's ideal/actual (goal >= 2x)")
    if lines:
        print("Goals (issue 15), ours:")
        for line in lines:
            print(f"- {line}")


# --- the run ----------------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="*", default=[40, 100, 300], help="sessions sending at once")
    parser.add_argument("--slow-n", type=int, nargs="*", default=[1000],
                        help="N for the slow model (40 tokens --slow-gap-ms apart); none: skip it")
    parser.add_argument("--slow-systems", nargs="*", default=["floor", "ours"], choices=SYSTEMS,
                        help="who runs the slow model (today's thread path needs minutes there)")
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument("--systems", nargs="*", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--skip-peers", action="store_true", help="leave out agno and langgraph")
    parser.add_argument("--ttft-ms", type=float, default=300)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--gap-ms", type=float, default=25)
    parser.add_argument("--slow-gap-ms", type=float, default=250)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each cell")
    parser.add_argument("--deadline", type=float, default=30,
                        help="seconds a run may take (at least 3 replies' time); unanswered sends then count as such")
    parser.add_argument("--worker-args", default=DEFAULT_WORKER_ARGS,
                        help="our worker's command line after `agent-sessions worker` (default: CLI defaults)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for our API and worker processes (repeatable)")
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT,
                        help="the thread-per-message release measured as shipped and with --concurrency 100")
    parser.add_argument("--shipped-max-n", type=int, default=40,
                        help="largest N for the baseline as shipped (4 at a time: N = 100 needs ~35 s, 300 ~100 s)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanups on SIGTERM too
    systems = [s for s in args.systems if not (args.skip_peers and s in PEERS)]
    fast = [Load(n, Timing(args.ttft_ms, args.tokens, args.gap_ms, stamp=True)) for n in args.n]
    slow = [Load(n, Timing(args.ttft_ms, args.tokens, args.slow_gap_ms, stamp=True), slow=True) for n in args.slow_n]
    loads_of = {system: fast + (slow if system in args.slow_systems else []) for system in systems}
    env = dict(item.split("=", 1) for item in args.env)
    ours = {"ours": OurSystem("ours", shlex.split(args.worker_args), env=env),
            "shipped": OurSystem("shipped", ["--concurrency", "4", "--loglevel", "warning"], args.baseline_commit,
                                 max_n=args.shipped_max_n),
            "c100": OurSystem("c100", ["--concurrency", "100", "--loglevel", "warning"], args.baseline_commit)}
    notes = {"ours": f"this checkout, worker `{args.worker_args}`" + (f", env {env}" if env else ""),
             "shipped": f"commit {args.baseline_commit}, worker `--concurrency 4` (as `agent-sessions dev` starts it)",
             "c100": f"commit {args.baseline_commit}, worker `--concurrency 100`"}
    skipped = bench_peers.install_peers([s for s in systems if s in PEERS])
    if {"ours", "shipped"} <= set(systems) and args.worker_args == DEFAULT_WORKER_ARGS and not env \
            and same_code(args.baseline_commit):
        skipped["shipped"] = (f"this checkout runs the code of {args.baseline_commit} (core/, api/, worker/) and "
                              "ours starts its worker as shipped: the ours rows are the shipped ones")
    for name in (s for s in systems if s in PEERS):
        package = "agno" if name == "agno" else "langgraph-api"
        notes[name] = f"{package} {bench_peers.peer_version(package)}" + (
            f", --n-jobs-per-worker {max(load.n for load in loads_of[name])}" if name == "langgraph" else "")
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    cells: list[Cell] = []
    with load_model.running() as model, redis_server() as redis:
        for system in (s for s in systems if s not in skipped):
            print(f"\n{system}:", flush=True)
            system_started = time.monotonic()
            loads = loads_of[system]
            if system == "floor":
                cells += [report_cell(floor_cell(load, model, deadline_for(load, args)))
                          for load in loads for _ in range(args.repeat)]
            elif system in ours:
                cells += measure_ours(ours[system], loads, args.modes, args, model, redis)
            else:
                cells += measure_peer(PEERS[system], loads, args.modes, args, model, skipped)
            notes[system] = (f"{notes.get(system, 'lean asyncio client to the model server')}; "
                             f"{time.monotonic() - system_started:.0f} s to measure")
    report(cells, args, skipped, notes)
    print(f"Machine: {os.cpu_count()} cores, 1-minute load average {load_before:.1f} before and "
          f"{os.getloadavg()[0]:.1f} after; {time.monotonic() - started:.0f} s in all. The machine is shared: "
          "compare rows of one run, not runs.")


if __name__ == "__main__":
    main()
