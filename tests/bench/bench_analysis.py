"""Time `analyze_exchange` per message, against VADER's `polarity_scores` alone on the same texts.

Run from the repository root: .venv/bin/python tests/bench/bench_analysis.py
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a plain script from anywhere

from core.analysis import analyze_exchange  # noqa: E402
from core.analysis.sentiment import _analyzer  # noqa: E402

SENTENCES = [
    "Hi there, my name is Alice.",
    "My app keeps crashing when I upload photos from my phone.",
    "I love the new design but the export button fails and I hate that.",
    "Could you tell me why the invoice shows the wrong amount?",
    "Thanks a lot, that fixed it!",
    "This is ridiculous, I have been waiting two weeks for a refund.",
    "The dashboard is really fast now and the charts look great.",
    "I tried clearing the cache and reinstalling, nothing changed.",
    "Is there a way to schedule reports every Monday morning?",
    "Honestly the support team was helpful, although the wait was long.",
    "I don't like the new notification sounds :(",
    "Please send me the steps again, I lost the email.",
]
SHORT_REPLIES = ["ok", "yes", "no", "thanks", "sure", "hmm", "bye", "why?", "great!", "still broken"]
COUNTS = {"short": 150, "medium": 150, "long 4000": 100}


def make_messages(rng: random.Random) -> list[tuple[str, str]]:
    messages = [("short", rng.choice(SHORT_REPLIES)) for _ in range(COUNTS["short"])]
    for _ in range(COUNTS["medium"]):
        messages.append(("medium", " ".join(rng.sample(SENTENCES, 3))))
    for _ in range(COUNTS["long 4000"]):
        text = ""
        while len(text) < 4000:
            text += rng.choice(SENTENCES) + (" " if rng.random() < 0.8 else "\n")
        messages.append(("long 4000", text[:4000]))
    rng.shuffle(messages)
    return messages


def summary(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"mean {statistics.fmean(ordered):7.3f}  p50 {statistics.median(ordered):7.3f}  p99 {p99:7.3f}"


def main() -> None:
    started = time.perf_counter()
    analyzer = _analyzer()
    print(f"VADER lexicon load (once per process): {(time.perf_counter() - started) * 1000:.1f} ms")

    messages = make_messages(random.Random(7))
    analysis_ms: dict[str, list[float]] = {kind: [] for kind in COUNTS}
    vader_ms: dict[str, list[float]] = {kind: [] for kind in COUNTS}
    state, sent_at = None, datetime(2025, 1, 1, tzinfo=UTC)
    for kind, text in messages:
        sent_at += timedelta(seconds=45)
        start = time.perf_counter()
        state, _ = analyze_exchange(state, text, "Here is what you can try.", 0.8, sent_at, {"timezone": "UTC"})
        analysis_ms[kind].append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        analyzer.polarity_scores(text)
        vader_ms[kind].append((time.perf_counter() - start) * 1000)

    print(f"{len(messages)} messages, per message in ms")
    for kind in [*COUNTS, "all"]:
        ours = [ms for k in COUNTS for ms in analysis_ms[k]] if kind == "all" else analysis_ms[kind]
        vader = [ms for k in COUNTS for ms in vader_ms[k]] if kind == "all" else vader_ms[kind]
        ratio = statistics.fmean(ours) / statistics.fmean(vader)
        print(f"{kind:>10}  analyze_exchange {summary(ours)}")
        print(f"{'':>10}  vader baseline   {summary(vader)}   ratio of means {ratio:.2f}")


if __name__ == "__main__":
    main()
