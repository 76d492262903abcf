"""Run every benchmark and print their tables: .venv/bin/python tests/bench/run_all.py [--quick]

Each script measures its own baseline in the same run; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FULL = [
    ["bench_roundtrip.py"],
    ["bench_throughput.py"],
    ["bench_peers.py"],
    ["bench_llm_load.py", "--n", "300"],  # the issue-15 goals' N; the script's defaults add 40 and 100 (+5 min)
    ["bench_calls.py"],
    ["bench_history.py"],
    ["bench_fanout.py"],
    ["bench_stats.py"],
    ["bench_analysis.py"],
    ["bench_coldstart.py"],
    ["bench_sweep.py"],
]
QUICK = {"bench_roundtrip.py": ["--messages", "100"], "bench_throughput.py": ["--seconds", "4"],
         "bench_peers.py": ["--messages", "100", "--langgraph-messages", "20", "--seconds", "4"],
         "bench_llm_load.py": ["--n", "40", "--slow-n", "--skip-peers"],
         "bench_calls.py": ["--messages", "50"], "bench_history.py": ["--repeat", "50"],
         "bench_fanout.py": ["--subscribers", "100", "--rounds", "3", "--messages", "20"],
         "bench_coldstart.py": ["--runs", "1"],
         "bench_sweep.py": ["--due", "2000", "--small", "20000", "--large", "200000", "--runs", "1"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer samples, for a smoke run")
    parser.add_argument("only", nargs="*", help="script names to run (default: all)")
    args = parser.parse_args()
    failed = []
    for script, *extra in FULL:
        if args.only and script not in args.only:
            continue
        if not (HERE / script).exists():
            continue
        options = extra + (QUICK.get(script, []) if args.quick else [])
        print(f"\n=== {script} {' '.join(options)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / script), *options], cwd=HERE).returncode != 0:
            failed.append(script)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
