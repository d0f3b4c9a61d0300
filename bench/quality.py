"""Completion quality on held-out files of real third-party code: one table, the same holes.

    .venv/bin/python bench/quality.py [--package click] [--holes 100] \
        [--rows smollm2,qwen-fp32,qwen-auto,qwen-heal,qwen-repo,qwen-bf16] [--finetune-minutes 15] \
        [--json out.json]

The source of an installed third-party package (default ``click``: not the standard library, not
ours) is copied into a temporary workspace and turned into the workspace dataset
(``dataset.api.build``). The dataset is split by file exactly as training splits it
(``training.split.split_records``, near-duplicates kept on one side); holes are cut from the
held-out files only (``training.holes.make_holes``: line holes from a random column, block holes
of 2-8 lines), and every row completes the *same* holes through
:func:`training.evaluate.run_holes`, i.e. ``Engine.complete``, the engine the server runs.

Rows (``--rows``, comma-separated; each loads its model once):

- ``smollm2``   -- ``bundled:smollm2-135m``, ``dtype: auto`` (fp32: bf16 changes its output)
- ``qwen-fp32`` -- ``bundled:qwen2.5-coder-0.5b`` in fp32, no token healing
- ``qwen-auto`` -- the same with the dtype and weights ``auto`` picks (what the server loads:
  bf16 with int8 decoding weights on a native-bf16 CPU, :mod:`model_runtime.quant`)
- ``qwen-heal`` -- ``qwen-auto`` with token healing at the cursor
- ``qwen-repo`` -- ``qwen-heal`` with repository context: snippets the server's index
  (``model_runtime.retrieval``) retrieves from the workspace's other files
- ``qwen-bf16``, ``qwen-int4`` -- ``qwen-repo`` with bf16 / int4 weights (``quantize: none`` /
  ``int4``) instead of ``auto``
- ``qwen-repo-defs``, ``qwen-repo-4sim`` -- ``qwen-repo`` with 0 / 4 BM25 windows (server: 1)
- ``qwen-repo-1024``, ``qwen-heal-1024`` -- ``qwen-repo`` / ``qwen-heal`` with a 1,024-token
  prompt budget (``contextTokens``) instead of the default
- ``qwen-tuned`` (``--finetune-minutes M``) -- ``qwen-repo`` serving a LoRA adapter fine-tuned
  for M minutes on the *training* files of the same split (``training.train.train``: examples
  with repository context, the editor command's defaults but the time budget and epochs); the
  promotion gate (``training.evaluate.gate``) compares it with the ``qwen-repo`` row

``--tuned-adapter DIR`` scores an adapter trained before instead (e.g. ``codellama-train
--workspace <copy of the package> --val-fraction 0.25 --epochs 3 --max-minutes 15 --no-eval`` on a
quiet machine; its run must hold out the same files, which is checked). ``--reuse OUT.json`` takes
the rows an earlier ``--json`` run already scored on the same holes.

Printed per row: exact match (EM), line-hole EM, block-hole EM, edit similarity (ES), empty
answers, seconds; then the mid-identifier holes (cursor inside a word): how many the first Qwen
row left empty and how many of those token healing fixed (non-empty, and exact); and how often
bf16 and fp32 greedy answers agree.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SMOLLM2 = "bundled:smollm2-135m"
QWEN = "bundled:qwen2.5-coder-0.5b"


@dataclass(frozen=True)
class Row:
    """One configuration to evaluate."""

    model: str
    dtype: str = "auto"
    heal: bool = False
    """Token healing at the cursor (``Engine(token_healing=...)``; the base rows run without)."""
    repo_context: bool = False
    adapter: str | None = None
    """A LoRA adapter directory served on top of the model (the fine-tune row)."""
    quantize: str = "auto"
    """Weight format of the served linear layers (``load_model(quantize=...)``; the server's)."""
    max_similar: int | None = None
    """BM25 windows in the repository context (``None``: the server's ``MAX_SIMILAR``)."""
    engine_options: dict[str, Any] = field(default_factory=dict)


BUDGET_1024 = {"context_tokens": 1024}
ROWS: dict[str, Row] = {
    "smollm2": Row(SMOLLM2),
    "qwen-fp32": Row(QWEN, dtype="float32"),
    "qwen-auto": Row(QWEN),
    "qwen-heal": Row(QWEN, heal=True),
    "qwen-repo": Row(QWEN, heal=True, repo_context=True),
    "qwen-bf16": Row(QWEN, heal=True, repo_context=True, quantize="none"),
    "qwen-int4": Row(QWEN, heal=True, repo_context=True, quantize="int4"),
    "qwen-repo-defs": Row(QWEN, heal=True, repo_context=True, max_similar=0),
    "qwen-repo-4sim": Row(QWEN, heal=True, repo_context=True, max_similar=4),
    "qwen-repo-1024": Row(QWEN, heal=True, repo_context=True, engine_options=BUDGET_1024),
    "qwen-heal-1024": Row(QWEN, heal=True, engine_options=BUDGET_1024),
}


def engine_kwargs(row: Row) -> dict[str, Any]:
    """Engine keyword arguments for a row (healing switch under the engine's own name)."""
    from model_runtime.engine import Engine

    params = inspect.signature(Engine).parameters
    options = dict(row.engine_options)
    if "token_healing" in params:
        options["token_healing"] = row.heal
    elif row.heal:
        raise SystemExit("this engine has no token_healing option")
    return options


def format_row(res: dict[str, Any]) -> str:
    """One table line: EM, line EM, block EM, ES, empty answers, seconds."""
    return (
        f"{res['row']:14s} {res['dtype']:9s} {res['all']['exact_match']:6.1f} "
        f"{res['line'].get('exact_match', 0):8.1f} {res['block'].get('exact_match', 0):9.1f} "
        f"{res['all']['edit_similarity']:6.1f} {res['empty']:6d} {res['seconds']:6.0f}"
        + (" (from --reuse)" if res.get("reused") else "")
    )


def reused_rows(path: str, holes: list[Any]) -> dict[str, dict[str, Any]]:
    """Rows of an earlier ``--json`` run, after checking it scored exactly these holes."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    if payload.get("holes") != [h.as_dict() for h in holes]:
        raise SystemExit(f"{path} was scored on other holes; run those rows again")
    return {r["row"]: r for r in payload.get("rows", [])}


def by_row(results: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The result of row ``name``, if it ran."""
    return next((r for r in results if r["row"] == name), None)


def mid_identifier(prefix: str, target: str) -> bool:
    """The cursor sits inside a word: an identifier character on both sides."""
    return (
        bool(prefix and target)
        and (prefix[-1].isalnum() or prefix[-1] == "_")
        and (target[0].isalnum() or target[0] == "_")
    )


def run_row(
    name: str,
    row: Row,
    holes: list[Any],
    loaded_cache: dict[tuple[str, str, str], Any],
    index: Any,
    max_new_tokens: int,
) -> dict[str, Any]:
    """Complete every hole with one row's configuration; scores, predictions and timing."""
    from model_runtime.engine import Engine
    from model_runtime.loader import load_model
    from training.evaluate import run_holes
    from training.metrics import score

    key = (row.model, row.dtype, row.quantize)
    if key not in loaded_cache:
        loaded_cache.clear()  # one model in memory at a time
        loaded_cache[key] = load_model(row.model, dtype=row.dtype, quantize=row.quantize)
    loaded = loaded_cache[key]
    engine = Engine(loaded, **engine_kwargs(row))
    if row.adapter:
        engine.set_adapter(row.adapter)
    started = time.monotonic()
    preds = run_holes(
        engine,
        holes,
        max_new_tokens=max_new_tokens,
        index=index if row.repo_context else None,
        max_similar=row.max_similar,
    )
    seconds = time.monotonic() - started
    out: dict[str, Any] = {"row": name, "model": row.model, "dtype": loaded.dtype}
    out["quantize"] = loaded.quantize
    out["context_tokens"] = engine.context_tokens
    for kind in ("all", "line", "block"):
        pairs = [
            (p, h.target) for p, h in zip(preds, holes, strict=True) if kind in ("all", h.kind)
        ]
        out[kind] = score(pairs).as_dict() if pairs else {}
    out["empty"] = sum(1 for p in preds if not p.strip())
    out["seconds"] = round(seconds, 1)
    out["preds"] = preds
    return out


def train_adapter(args: argparse.Namespace, workspace: Path, out: Path) -> Any:
    """A LoRA fine-tune of Qwen on the split's training files (the editor command's defaults but
    the time budget and epochs); no evaluation, the rows score it."""
    from training.config import TrainConfig
    from training.train import train

    return train(
        TrainConfig(
            output=str(out),
            workspace=str(workspace),
            base_model=QWEN,
            epochs=args.finetune_epochs,
            max_minutes=args.finetune_minutes,
            val_fraction=args.val_fraction,
            seed=args.seed,
            eval=False,  # scored on exactly the rows' holes, prompts and engine
            device="cpu",
            checkpoint_every=10**6,
        ),
        progress_sink=lambda e: (
            print(json.dumps(e), flush=True)
            if e.get("event") != "step" or e.get("step", 0) % 5 == 0
            else None
        ),
    )


def trained_adapter(adapter: str, held_out: list[str]) -> Any:
    """The result of an earlier run (``codellama-train ... --val-fraction`` as the bench's), read
    from its ``run.json``; it must have held out exactly the bench's files."""
    from training.train import TrainResult, TrainStatus

    run_dir = Path(adapter).resolve().parent
    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    if sorted(meta.get("validation_files", [])) != held_out:
        raise SystemExit(f"{run_dir} held out {meta.get('validation_files')}, not {held_out}")
    return TrainResult(
        TrainStatus.SUCCESS,
        str(run_dir),
        steps=int(meta.get("steps", 0)),
        train_tokens=int(meta.get("train_tokens", 0)),
        tokens_per_s=float(meta.get("tokens_per_s", 0.0)),
        seconds=float(meta.get("seconds", 0.0)),
        final_loss=float(meta.get("final_loss", 0.0)),
        adapter_dir=str(adapter),
    )


def finetune_row(
    args: argparse.Namespace, result: Any, holes: list[Any], index: Any, base: dict[str, Any]
) -> dict[str, Any]:
    """Score the fine-tuned adapter on the same holes as the other rows, and ask the trainer's
    promotion gate (:func:`training.evaluate.gate`) about it against ``base`` (the ``qwen-repo``
    row: what the server serves before the fine-tune)."""
    from training.evaluate import gate

    if not result.adapter_dir:
        raise SystemExit(f"the fine-tune failed: {result.status.value}: {result.error}")
    tuned_row = Row(QWEN, heal=True, repo_context=True, adapter=result.adapter_dir)
    row = run_row("qwen-tuned", tuned_row, holes, {}, index, args.max_new_tokens)
    row["train"] = {
        "steps": result.steps,
        "tokens": result.train_tokens,
        "tokens_per_s": result.tokens_per_s,
        "seconds": result.seconds,
        "final_loss": result.final_loss,
    }
    report = {"holes": len(holes), "base": {"adapter": None, **base}, "adapter": row}
    row["gate"] = gate(report)
    return row


def _parser() -> argparse.ArgumentParser:
    from quality_holes import add_hole_options

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_hole_options(parser)
    parser.add_argument("--rows", default="smollm2,qwen-fp32,qwen-auto,qwen-heal,qwen-repo")
    parser.add_argument(
        "--finetune-minutes",
        type=float,
        default=0.0,
        help="also train a LoRA for this long and add the qwen-tuned row (0: no fine-tune)",
    )
    parser.add_argument("--finetune-epochs", type=float, default=3.0)
    parser.add_argument(
        "--tuned-adapter",
        default=None,
        help="score this adapter as the qwen-tuned row instead of training one (its run must "
        "hold out the same files: codellama-train --workspace COPY --val-fraction 0.25)",
    )
    parser.add_argument(
        "--reuse",
        default=None,
        help="take rows already in this earlier --json output (same holes, checked) as they are",
    )
    parser.add_argument("--json", default=None, help="write every figure and prediction here")
    return parser


def _finetune_row(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    cache: dict[tuple[str, str, str], Any],
    held_out: list[str],
    workspace: Path,
    tmp: Path,
    holes: list[Any],
    index: Any,
) -> None:
    """Train (or take) the adapter, score the qwen-tuned row and append it to ``results``."""
    base = by_row(results, "qwen-repo")
    if base is None:
        raise SystemExit("the qwen-tuned row needs the qwen-repo row (the gate's baseline)")
    cache.clear()  # the trainer loads its own copy
    if args.tuned_adapter:
        trained = trained_adapter(args.tuned_adapter, held_out)
    else:
        trained = train_adapter(args, workspace, tmp / "run")
    tuned = finetune_row(args, trained, holes, index, base)
    results.append(tuned)
    print(
        f"fine-tune: {tuned['train']['steps']} steps in {tuned['train']['seconds']:.0f} s, "
        f"{tuned['train']['tokens_per_s']:.0f} tok/s, final loss "
        f"{tuned['train']['final_loss']:.3f}; gate: {tuned['gate']['reason']}",
        flush=True,
    )
    print(format_row(tuned), flush=True)


def _comparisons(results: list[dict[str, Any]], holes: list[Any]) -> None:
    """Token healing on the mid-identifier holes, and bf16 against fp32."""
    by_name = {r["row"]: r for r in results}
    mids = [i for i, h in enumerate(holes) if mid_identifier(h.prefix, h.target)]
    base_name = next((n for n in ("qwen-auto", "qwen-fp32") if n in by_name), None)
    if base_name and "qwen-heal" in by_name:
        base, heal = by_name[base_name]["preds"], by_name["qwen-heal"]["preds"]
        empty = [i for i in mids if not base[i].strip()]
        fixed = [i for i in empty if heal[i].strip()]
        exact = [i for i in empty if heal[i].strip() == holes[i].target.strip()]
        share = 100 * len(fixed) / len(empty) if empty else 100.0
        print(
            f"\nmid-identifier holes: {len(mids)}; {base_name} left {len(empty)} empty; "
            f"token healing answered {len(fixed)} of them ({share:.0f} %), {len(exact)} exactly"
        )
    if "qwen-fp32" in by_name and "qwen-auto" in by_name:
        a, b = by_name["qwen-fp32"]["preds"], by_name["qwen-auto"]["preds"]
        same = sum(x == y for x, y in zip(a, b, strict=True))
        print(f"bf16 ({by_name['qwen-auto']['dtype']}) and fp32 answers identical: {same}/{len(a)}")
        fp32_s, auto_s = by_name["qwen-fp32"]["seconds"], by_name["qwen-auto"]["seconds"]
        print(f"time qwen-auto ÷ qwen-fp32: {auto_s / fp32_s:.2f}")


def main() -> None:
    args = _parser().parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from quality_holes import describe_holes, held_out_holes

    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {', '.join(ROWS)}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    workspace, records, split, holes = held_out_holes(args, tmp)
    print(
        f"{describe_holes(args.package, records, split, holes)}; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    index = None
    if any(ROWS[n].repo_context for n in names):
        from model_runtime.retrieval import index_records

        # What the server indexes: every dataset file (the hole's own file is never used).
        index = index_records(records, name=args.package)

    results: list[dict[str, Any]] = []
    cache: dict[tuple[str, str, str], Any] = {}
    header = f"{'row':14s} {'dtype':9s} {'EM':>6s} {'line EM':>8s} {'block EM':>9s} {'ES':>6s} {'empty':>6s} {'s':>6s}"
    prior = reused_rows(args.reuse, holes) if args.reuse else {}
    for name in names:
        if name in prior:
            res = {**prior[name], "reused": True}
        else:
            res = run_row(name, ROWS[name], holes, cache, index, args.max_new_tokens)
        results.append(res)
        print(format_row(res), flush=True)
    if args.finetune_minutes > 0 or args.tuned_adapter:
        paths = sorted(split.validation_paths)
        _finetune_row(args, results, cache, paths, workspace, tmp, holes, index)
    print()
    print(header)
    for res in results:
        print(format_row(res))
    _comparisons(results, holes)
    if args.json:
        payload = {
            "package": args.package,
            "holes": [h.as_dict() for h in holes],
            "held_out": sorted(split.validation_paths),
            "rows": results,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        Path(args.json).write_text(json.dumps(payload, indent=1))
        print("wrote", args.json)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
