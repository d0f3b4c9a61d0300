"""Watcher latency (one saved file -> its committed record) and memory, on 1k and 10k files.

    .venv/bin/python bench/dataset_latency.py [SAVES]

For each workspace size: start a watcher (debounce 50 ms), save one random file at a time and
wait for the commit callback. Reported per save: total latency (save -> committed, includes
the debounce and inotify delivery), latency excluding the debounce, and the batch processing
time (debounce end -> commit). Export (``dataset.jsonl`` rewrite) time is reported separately:
it runs in the background after commits. Ratio 10k/1k is the figure that must stay <= 1.5.
Watch memory: RSS of this process after the 10k watcher started minus RSS before.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataset_common import generated_tree

from dataset import api
from dataset.config import DatasetConfig
from dataset.watcher import ChangeEvent

DEBOUNCE = 0.05


def p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def run(n_files: int, saves: int) -> dict[str, float]:
    src = generated_tree(n_files)
    work = Path(tempfile.mkdtemp(prefix=f"dslat{n_files}-")) / "ws"
    shutil.copytree(src, work)
    api.build(work)
    proc = psutil.Process()
    rss_before = proc.memory_info().rss
    done: dict[str, ChangeEvent] = {}
    cond = threading.Condition()
    exports: list[float] = []

    def on_change(event: ChangeEvent) -> None:
        with cond:
            for path in event.changed:
                done[path] = event
            cond.notify_all()

    watcher = api.Watcher(
        work, config=DatasetConfig(debounce_s=DEBOUNCE, export_interval_s=0.5),
        on_change=on_change, on_export=lambda n, s: exports.append(s),
    )  # fmt: skip
    watcher.start()
    rss_watch = proc.memory_info().rss
    files = sorted(str(p.relative_to(work)) for p in work.rglob("*.py"))
    rng = random.Random(n_files)
    total, processing = [], []
    try:
        for i in range(saves):
            rel = rng.choice(files)
            text = (work / rel).read_text()
            with cond:
                done.pop(rel, None)
            saved = time.monotonic()
            (work / rel).write_text(text + f"\nSAVE_{i} = {i}\n")
            with cond:
                if not cond.wait_for(partial(dict.__contains__, done, rel), timeout=10):
                    raise RuntimeError(f"no commit for {rel}")
                event = done[rel]
            total.append(event.committed_at - saved)
            processing.append(event.latency_s)
            time.sleep(0.02 + rng.random() * 0.05)
        watcher.wait_idle()
        time.sleep(0.6)  # let the background export run
    finally:
        watcher.stop()
        shutil.rmtree(work.parent, ignore_errors=True)
    excl = [t - DEBOUNCE for t in total]
    result = {
        "p50_total_ms": statistics.median(total) * 1e3,
        "p95_total_ms": p95(total) * 1e3,
        "p50_excl_ms": statistics.median(excl) * 1e3,
        "p95_excl_ms": p95(excl) * 1e3,
        "p95_processing_ms": p95(processing) * 1e3,
        "export_p50_ms": statistics.median(exports) * 1e3 if exports else float("nan"),
        "rss_delta_mb": (rss_watch - rss_before) / 1e6,
        "rss_mb": rss_watch / 1e6,
    }
    print(
        f"{n_files:>6} files: save->commit p50 {result['p50_total_ms']:.1f} ms, p95 "
        f"{result['p95_total_ms']:.1f} ms; excluding the {DEBOUNCE * 1e3:.0f} ms debounce p50 "
        f"{result['p50_excl_ms']:.1f} ms, p95 {result['p95_excl_ms']:.1f} ms; batch processing p95 "
        f"{result['p95_processing_ms']:.1f} ms; export of dataset.jsonl p50 "
        f"{result['export_p50_ms']:.0f} ms ({len(exports)} exports); RSS {result['rss_mb']:.0f} MB "
        f"(+{result['rss_delta_mb']:.1f} MB for the watcher)"
    )
    return result


def main() -> None:
    saves = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    print(f"load average before: {os.getloadavg()}")
    small = run(1_000, saves)
    large = run(10_000, saves)
    print(
        f"ratio 10k/1k: p95 excl. debounce {large['p95_excl_ms'] / small['p95_excl_ms']:.2f}, "
        f"p95 processing {large['p95_processing_ms'] / small['p95_processing_ms']:.2f}, "
        f"p50 excl. debounce {large['p50_excl_ms'] / small['p50_excl_ms']:.2f} (goal <= 1.5)"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
