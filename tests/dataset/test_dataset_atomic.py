"""kill -9 at any moment leaves a dataset that loads and equals some committed state."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

from dataset import api
from dataset.store import read_jsonl

N_FILES = 25
RUNS = 24


def _write_generation(root: Path, gen: int) -> None:
    for i in range(N_FILES):
        body = "".join(f"def f{j}(x):\n    return x + {j}\n\n" for j in range(20 + i))
        tmp = root / f".mod{i:02d}.py.tmp"
        tmp.write_text(f"GENERATION = {gen}\n\n{body}")
        os.replace(tmp, root / f"mod{i:02d}.py")


def _child(root: str, start_gen: int, ready: Any, committed: Any) -> None:
    gen = start_gen
    ready.set()
    while True:
        gen += 1
        _write_generation(Path(root), gen)
        # Alternate incremental syncs and full rebuilds: the kill lands in either.
        if gen % 3:
            api.sync(root)
        else:
            api.build(root)
        committed.value += 1


def _generations(records: list[dict[str, object]]) -> set[int]:
    gens = set()
    for r in records:
        first = str(r["content"]).split("\n", 1)[0]
        gens.add(int(first.removeprefix("GENERATION = ")))
    return gens


def test_kill_minus_nine_loop(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    _write_generation(root, 0)
    api.build(root)
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(7)
    committed_max = 0
    seen_states: set[int] = set()
    for run in range(RUNS):
        ready = ctx.Event()
        committed = ctx.Value("i", 0)
        start_gen = 1000 * (run + 1)
        proc = ctx.Process(
            target=_child, args=(str(root), start_gen, ready, committed), daemon=True
        )
        proc.start()
        assert ready.wait(10)
        # Let the child commit 0-2 generations (however loaded the machine is), then kill it
        # somewhere inside its next write/commit/export cycle.
        target = rng.randint(0, 2)
        deadline = time.monotonic() + 30
        while committed.value < target and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.06))
        assert proc.pid is not None
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL

        # The catalogue: one committed state, every file of the same generation.
        records = api.load_records(root)
        assert len(records) == N_FILES, run
        gens = _generations(records)
        assert len(gens) == 1, (run, gens)
        (gen,) = gens
        # The export: whole, parseable, also one committed state (possibly an older one).
        exported = read_jsonl(api.dataset_path(root))
        assert len(exported) == N_FILES, run
        export_gens = _generations(exported)
        assert len(export_gens) == 1, (run, export_gens)
        assert next(iter(export_gens)) <= gen
        assert gen >= committed_max
        seen_states.add(gen - start_gen)
        # Recovery needs nothing special: the next sync just commits the workspace. Make the
        # workspace uniform first (the kill may have left it half-way through a generation),
        # so that every committed state is recognisable by a single generation number.
        _write_generation(root, start_gen + 999)
        stats = api.sync(root)
        assert stats.kept == N_FILES
        committed_max = start_gen + 999
    # The kills landed at different points (before, between and after the child's commits).
    assert len(seen_states) >= 3, seen_states
    leftovers = [p.name for p in (root / ".codellama").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
