"""Smoke benchmark: a 100k-file tree (small files) builds, syncs and does not blow up memory.

    .venv/bin/python bench/dataset_100k.py

Baseline in the same run: a plain ``os.walk`` + ``stat`` of the tree.
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dataset_common import generated_tree

from dataset import api


def main() -> None:
    print(f"load average before: {os.getloadavg()}")
    root = generated_tree(100_000, avg_bytes=300, name="gen100k-small")
    start = time.perf_counter()
    n = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(dirpath, name))
            n += 1
    walk_s = time.perf_counter() - start
    out = Path(tempfile.mkdtemp(prefix="ds100k-"))
    try:
        built = api.build(root, out=out)
        synced = api.sync(root, out=out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"walk+stat baseline: {n} files in {walk_s:.2f} s")
    print(
        f"build: {built.files_listed} files, {built.bytes_read / 1e6:.1f} MB, kept {built.kept} in "
        f"{built.duration_s:.1f} s ({built.bytes_read / 1e6 / built.duration_s:.1f} MB/s wall); "
        f"no-change sync: {synced.duration_s:.1f} s, {synced.files_read} files read "
        f"(sync/walk = {synced.duration_s / walk_s:.1f}); peak RSS {peak:.0f} MB"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
