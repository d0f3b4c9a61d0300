"""Completion quality through the llama.cpp engine vs in process: the same holes, the same prompts.

    .venv/bin/python bench/engine_quality.py [--package click] [--holes 100] \\
        [--context-tokens 1536] [--no-repo-context] [--no-token-healing] [--adapter DIR] \\
        [--json out.json]
    .venv/bin/python bench/engine_quality.py --holes 5 --context-tokens 256 \\
        --max-new-tokens 16 --no-repo-context                       # smoke run

The holes are chosen exactly as ``bench/quality.py`` chooses them (``bench/quality_holes.py``:
an installed third-party package's source as a workspace dataset; the training split's held-out
files; ``training.holes.make_holes``). Both rows go through ``codellama-eval``'s own code path,
:func:`training.evaluate.evaluate_adapter` with ``backend="inprocess"`` then
``backend="llama.cpp"``: the bundled Qwen2.5-Coder-0.5B in process (its converted checkpoint,
the loader's default dtype) vs llama.cpp serving the bundled Q4_K_M GGUF (a managed
``LlamaServer``), greedy, our prompts and stop rules on both sides, repository context from the
same index. Token healing is on for both sides by default, as the server does it (in process
in the decode loop, llama.cpp through a grammar); ``--no-token-healing`` compares the unhealed
prompts.

Printed: EM, line EM, block EM, ES, empty answers and seconds per backend; then the EM
difference llama.cpp − in-process (goal: within 1 point), how many answers are identical, and
the time ratio. With ``--adapter`` the adapter is scored on both backends too (converted to a
GGUF LoRA for llama.cpp).

Needs ``scripts/build_llama_cpp.sh`` (llama-cpp-python[server] and the LoRA converter).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

QWEN = "bundled:qwen2.5-coder-0.5b"
BACKENDS = ("inprocess", "llama.cpp")


def _parser() -> argparse.ArgumentParser:
    from quality_holes import add_hole_options

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_hole_options(parser)
    parser.add_argument("--context-tokens", type=int, default=1536)
    parser.add_argument(
        "--repo-context", action=argparse.BooleanOptionalAction, default=True,
        help="snippets of the package's other files in the prompts (codellama-eval's default)",
    )  # fmt: skip
    parser.add_argument(
        "--token-healing", action=argparse.BooleanOptionalAction, default=True,
        help="token healing on both sides, as the server does it (llama.cpp: a grammar)",
    )  # fmt: skip
    parser.add_argument("--adapter", default=None, help="also score this PEFT adapter")
    parser.add_argument("--json", default=None, help="write every figure and prediction here")
    return parser


def row(backend: str, report: dict[str, Any], side: str, seconds: float) -> dict[str, Any]:
    """One printed row: the scores of one side of an evaluation report."""
    scores = report[side]
    preds = report["predictions"][side]
    return {
        "backend": backend, "side": side, "all": scores["all"], "line": scores["line"],
        "block": scores["block"], "empty": sum(1 for p in preds if not p.strip()),
        "seconds": round(seconds, 1), "preds": preds, "engine_errors": report["engine_errors"],
    }  # fmt: skip


def format_row(r: dict[str, Any]) -> str:
    """EM, line EM, block EM, ES, empty answers, seconds."""
    return (
        f"{r['backend']:10s} {r['side']:8s} {r['all']['exact_match']:6.1f} "
        f"{r['line'].get('exact_match', 0):8.1f} {r['block'].get('exact_match', 0):9.1f} "
        f"{r['all']['edit_similarity']:6.1f} {r['empty']:6d} {r['seconds']:7.0f}"
        + (f"  ({r['engine_errors']} engine errors)" if r["engine_errors"] else "")
    )


def compare(rows: list[dict[str, Any]], side: str) -> str:
    """The EM difference, identical answers and time ratio of the two backends on one side."""
    ours, theirs = (
        next(r for r in rows if r["backend"] == b and r["side"] == side) for b in BACKENDS
    )
    diff = theirs["all"]["exact_match"] - ours["all"]["exact_match"]
    same = sum(a == b for a, b in zip(ours["preds"], theirs["preds"], strict=True))
    ratio = theirs["seconds"] / ours["seconds"] if ours["seconds"] else float("nan")
    verdict = "within" if abs(diff) <= 1.0 else "NOT within"
    return (
        f"{side}: EM llama.cpp − in-process = {diff:+.1f} points ({verdict} the 1-point goal); "
        f"identical answers {same}/{len(ours['preds'])}; time llama.cpp ÷ in-process {ratio:.2f}"
    )


def main() -> None:
    args = _parser().parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from quality_holes import describe_holes, held_out_holes

    from training.evaluate import evaluate_adapter

    tmp = Path(tempfile.mkdtemp(prefix="bench-engine-quality-"))
    try:
        _workspace, records, split, holes = held_out_holes(args, tmp)
        print(
            f"{describe_holes(args.package, records, split, holes)}; context "
            f"{args.context_tokens} tokens, repo context "
            f"{'on' if args.repo_context else 'off'}, token healing "
            f"{'on' if args.token_healing else 'off'}; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        print(f"{'backend':10s} {'side':8s} {'EM':>6s} {'line EM':>8s} {'block EM':>9s} "
              f"{'ES':>6s} {'empty':>6s} {'s':>7s}", flush=True)  # fmt: skip
        rows: list[dict[str, Any]] = []
        for backend in BACKENDS:
            started = time.monotonic()
            report = evaluate_adapter(
                split.validation, base_model=QWEN, adapter=args.adapter, holes=holes,
                max_new_tokens=args.max_new_tokens, seed=args.seed, backend=backend,
                engine_options={
                    "context_tokens": args.context_tokens, "token_healing": args.token_healing,
                },
                context_records=records if args.repo_context else None,
                repo_name=args.package, keep_predictions=True,
            )  # fmt: skip
            total = time.monotonic() - started
            base_s = float(report.get("base_seconds", total))
            rows.append(row(backend, report, "base", base_s))
            print(format_row(rows[-1]), flush=True)
            if args.adapter:
                rows.append(row(backend, report, "adapter", float(report["adapter_seconds"])))
                print(format_row(rows[-1]), flush=True)
            gc.collect()  # one model in memory at a time
        print()
        for side in ("base", "adapter") if args.adapter else ("base",):
            print(compare(rows, side))
        if args.json:
            payload = {
                "package": args.package, "holes": [h.as_dict() for h in holes],
                "held_out": sorted(split.validation_paths), "rows": rows,
                "options": vars(args), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }  # fmt: skip
            Path(args.json).write_text(json.dumps(payload, indent=1))
            print("wrote", args.json)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
