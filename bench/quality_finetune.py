"""Quality: fine-tune the bundled model on a stdlib package for ≤ N minutes, base vs adapter.

A copy of an installed standard-library package (default ``email``) becomes the workspace; the
dataset is built with ``dataset.api.build``; ``training.train.train`` fine-tunes the bundled
SmolLM2 with a wall-clock budget and then evaluates base vs adapter on holes cut from the
held-out files (same split, same Engine as the server).  Prints EM/ES for both and the delta.

    .venv/bin/python bench/quality_finetune.py [--package email] [--max-minutes 14] \
        [--max-holes 100] [--output /tmp/quality-run]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--package", default="email")
    p.add_argument("--model", default="bundled:smollm2-135m")
    p.add_argument("--max-minutes", type=float, default=14.0)
    p.add_argument("--max-holes", type=int, default=100)
    p.add_argument("--context-len", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--output", default=None, help="run directory (default: a temp dir)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from dataset import api
    from training.config import TrainConfig
    from training.train import train

    pkg = importlib.import_module(args.package)
    src = Path(pkg.__file__ or "").parent
    tmp = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    ws = tmp / args.package
    shutil.copytree(src, ws, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    stats = api.build(ws)
    print(
        f"# workspace: copy of stdlib '{args.package}' → {stats.kept} files kept, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    out = Path(args.output) if args.output else tmp / "run"
    started = time.monotonic()
    result = train(
        TrainConfig(
            output=str(out),
            workspace=str(ws),
            base_model=args.model,
            context_len=args.context_len,
            batch_size=args.batch_size,
            lr=args.lr,
            epochs=10.0,
            max_minutes=args.max_minutes,
            max_holes=args.max_holes,
            device="cpu",
            checkpoint_every=10**6,
        ),
        progress_sink=lambda e: (
            print(json.dumps(e), flush=True)
            if e.get("event") != "step" or e["step"] % 10 == 0
            else None
        ),
    )
    total = time.monotonic() - started
    print(
        f"status {result.status.value}: {result.steps} steps, {result.train_tokens} tokens, "
        f"{result.tokens_per_s} tok/s, train {result.seconds:.0f}s, total incl. eval {total:.0f}s"
    )
    rep = result.metrics
    if "adapter" in rep:
        b, a = rep["base"]["all"], rep["adapter"]["all"]
        print(f"holes {rep['holes']} from {rep['files']} held-out files")
        for key in ("exact_match", "edit_similarity", "identifier_em", "identifier_f1"):
            print(
                f"{key:16s} base {b[key]:6.1f}  adapter {a[key]:6.1f}  delta {a[key] - b[key]:+6.1f}"
            )
        for sub in ("line", "block"):
            bs, as_ = rep["base"][sub], rep["adapter"][sub]
            print(
                f"  {sub:5s} n={bs['n']:3d} EM {bs['exact_match']:.1f} → {as_['exact_match']:.1f}, "
                f"ES {bs['edit_similarity']:.1f} → {as_['edit_similarity']:.1f}"
            )
        print("gate:", rep["gate"]["reason"])
    print("run dir:", out)


if __name__ == "__main__":
    main()
