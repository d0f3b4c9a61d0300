"""Shared helpers for the dataset benchmarks: deterministic generated workspaces."""

from __future__ import annotations

import random
import shutil
import sysconfig
from pathlib import Path

BENCH_ROOT = Path("/tmp/codellama-bench")

WORDS = ["value", "item", "count", "index", "total", "result", "buffer", "config", "parser", "token", "stream", "record", "window", "cache", "entry", "node", "graph", "path", "field", "model", "layer", "batch", "score"]  # fmt: skip


def _module(rng: random.Random, target: int) -> str:
    out = ['"""Generated module for benchmarks."""', "", "import os", "import sys", ""]
    size = 0
    n = 0
    while size < target:
        a, b, c = rng.sample(WORDS, 3)
        n += 1
        block = (
            f"\n\nclass {a.title()}{b.title()}{n}:\n"
            f'    """Keeps the {a} and the {b} of one {c}."""\n\n'
            f"    def __init__(self, {a}, {b}=None):\n"
            f"        self.{a} = {a}\n"
            f"        self.{b} = {b} or []\n\n"
            f"    def {c}_{n}(self, {c}):\n"
            f"        # combine the {a} with every {b}\n"
            f"        total = 0\n"
            f"        for entry in self.{b}:\n"
            f"            total += len(str(entry)) * {rng.randint(1, 999)}\n"
            f"        return total + len(str({c}))\n"
        )
        out.append(block)
        size += len(block)
    return "\n".join(out) + "\n"


def generated_tree(n_files: int, *, avg_bytes: int = 4000, name: str | None = None) -> Path:
    """A tree of ``n_files`` Python-like files in directories of 100 (created once, reused)."""
    root = BENCH_ROOT / (name or f"gen{n_files}")
    marker = root / ".complete"
    if marker.exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    rng = random.Random(n_files)
    for i in range(n_files):
        path = root / f"pkg{i // 100:03d}" / f"mod{i:05d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_module(rng, rng.randint(avg_bytes // 2, avg_bytes * 3 // 2)))
    marker.write_text("ok\n")
    return root


def stdlib_copy() -> Path:
    """A copy of the installed Python standard library (no site-packages, no caches).

    Building a copy keeps the state dir out of the Python installation (which here also sits
    inside pyenv's git checkout).
    """
    root = BENCH_ROOT / "stdlib"
    if (root / ".complete").exists():
        return root
    if root.exists():
        shutil.rmtree(root)
    src = Path(sysconfig.get_paths()["stdlib"])
    shutil.copytree(
        src, root, ignore=shutil.ignore_patterns("site-packages", "__pycache__"), symlinks=True
    )
    (root / ".complete").write_text("ok\n")
    return root
