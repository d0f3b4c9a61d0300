"""Full-build throughput of the dataset (MB of source per second).

    .venv/bin/python bench/dataset_build.py [WORKERS ...]     (default: 1 2)

Baseline measured in the same run: reading and sha256-hashing every file of the same tree
(the I/O floor of any build). Goal: >= 10 MB/s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataset_common import generated_tree, stdlib_copy

from dataset import api
from dataset.config import DatasetConfig

GOAL_MBPS = 10.0


def read_hash_baseline(root: Path) -> tuple[float, float]:
    """Seconds and MB to read + sha256 every regular file (no filtering)."""
    total = 0
    start = time.perf_counter()
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            with open(path, "rb") as fh:
                data = fh.read()
            hashlib.sha256(data).hexdigest()
            total += len(data)
    return time.perf_counter() - start, total / 1e6


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bench(name: str, root: Path, workers: int) -> dict[str, float]:
    base_s, base_mb = read_hash_baseline(root)
    out = Path(tempfile.mkdtemp(prefix="dsbench-"))
    try:
        cpu0 = _cpu()
        result = api.build(root, out=out, config=DatasetConfig(workers=workers))
        cpu = _cpu() - cpu0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    mb = result.bytes_read / 1e6
    mbps = mb / result.duration_s
    print(
        f"{name} [workers={workers}]: {result.files_listed} files, {mb:.1f} MB read, kept "
        f"{result.kept} ({result.kept_bytes / 1e6:.1f} MB) in {result.duration_s:.2f} s wall, "
        f"{cpu:.2f} s CPU (all processes) -> {mbps:.1f} MB/s wall, {mb / cpu:.1f} MB per CPU-second "
        f"(export {result.export_s:.2f} s)"
    )
    print(
        f"  baseline read+sha256: {base_mb / base_s:.0f} MB/s; build/baseline = "
        f"{mbps / (base_mb / base_s):.3f}; build/goal({GOAL_MBPS:.0f} MB/s) = {mbps / GOAL_MBPS:.2f}"
    )
    return {"mbps": mbps, "cpu_mbps": mb / cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "workers", nargs="*", type=int, default=[1, 2], help="worker counts to run (default: 1 2)"
    )
    args = parser.parse_args()
    if any(w < 1 for w in args.workers):
        parser.error("worker counts must be >= 1")
    print(f"load average before: {os.getloadavg()}")
    for w in args.workers:
        bench("generated 10k-file tree", generated_tree(10_000), w)
        bench("python stdlib copy", stdlib_copy(), w)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
