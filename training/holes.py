"""Evaluation holes cut from held-out files.

Two kinds, as in CrossCodeEval-style infilling benchmarks: ``line`` — the rest of a line from a
random column (after the indentation) to its end; ``block`` — two to eight whole lines after a
line, removed with their newlines.  Every hole keeps the whole file as prefix + target + suffix.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Hole:
    """One infilling task: the model sees ``prefix`` and ``suffix`` and should write ``target``."""

    path: str
    prefix: str
    target: str
    suffix: str
    kind: str  # "line" | "block"

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly form."""
        return asdict(self)


def _line_starts(text: str) -> list[int]:
    starts = [0]
    starts.extend(i + 1 for i, ch in enumerate(text) if ch == "\n" and i + 1 < len(text))
    return starts


def line_hole(path: str, text: str, rng: random.Random) -> Hole | None:
    """Rest of a random non-trivial line from a random column after the indentation."""
    starts = _line_starts(text)
    candidates = []
    for s in starts:
        e = text.find("\n", s)
        e = len(text) if e < 0 else e
        line = text[s:e]
        stripped = line.strip()
        if len(stripped) >= 4 and not stripped.startswith("#"):
            candidates.append((s, e))
    if not candidates:
        return None
    s, e = rng.choice(candidates)
    line = text[s:e]
    indent = len(line) - len(line.lstrip())
    last = len(line.rstrip()) - 1
    col = rng.randint(indent, max(indent, last - 1))
    cut = s + col
    return Hole(path=path, prefix=text[:cut], target=text[cut:e], suffix=text[e:], kind="line")


def block_hole(path: str, text: str, rng: random.Random) -> Hole | None:
    """Two to eight whole lines following a random line, ending on a non-blank line."""
    lines = text.splitlines(keepends=True)
    if len(lines) < 4:
        return None
    n = rng.randint(2, min(8, len(lines) - 2))
    candidates = [
        i
        for i in range(1, len(lines) - n + 1)
        if lines[i].strip() and lines[i + n - 1].strip() and lines[i + n - 1].endswith("\n")
    ]
    if not candidates:
        return None
    i = rng.choice(candidates)
    start = sum(len(x) for x in lines[:i])
    target = "".join(lines[i : i + n])
    return Hole(
        path=path,
        prefix=text[:start],
        target=target,
        suffix=text[start + len(target) :],
        kind="block",
    )


def make_holes(
    records: Sequence[dict[str, Any]],
    *,
    max_holes: int = 200,
    block_fraction: float = 0.2,
    seed: int = 0,
) -> list[Hole]:
    """Up to ``max_holes`` holes spread round-robin over the files, stable for a seed."""
    files = sorted(
        (r for r in records if r.get("source", "file") == "file" and r.get("content")),
        key=lambda r: str(r["file_path"]),
    )
    if not files or max_holes <= 0:
        return []
    rng = random.Random(seed)
    n_block = round(max_holes * block_fraction)
    kinds = ["block"] * n_block + ["line"] * (max_holes - n_block)
    rng.shuffle(kinds)
    holes: list[Hole] = []
    seen: set[tuple[str, int, str]] = set()
    attempts = 0
    while len(holes) < max_holes and attempts < max_holes * 4:
        rec = files[attempts % len(files)]
        kind = kinds[len(holes)]
        attempts += 1
        path, text = str(rec["file_path"]), str(rec["content"])
        hole = (block_hole if kind == "block" else line_hole)(path, text, rng)
        if hole is None:
            continue
        key = (hole.path, len(hole.prefix), hole.kind)
        if key in seen:
            continue
        seen.add(key)
        holes.append(hole)
    return holes
