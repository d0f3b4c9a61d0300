"""The end of a run: what it keeps, its evaluation and gate, ``run.json``, ``loss.png``, ``done``.

A run that stopped before its last step (cancelled, or out of time) keeps a checkpoint; one
that was not cancelled writes ``adapter/``. The main process then draws the loss curve, frees
the trainer's memory and evaluates the adapter against the served model on the held-out files
(:func:`training.evaluate.evaluate_adapter`, as the server prompts), writes ``run.json`` and
emits the single ``done`` event. A failed evaluation keeps the adapter and does not promote.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from training.checkpoints import clear_cancel_file, save_adapter
from training.data import TrainingError, repo_name, resolve_base_model
from training.loop import LoopState, Run, checkpoint
from training.result import (
    EvaluationCancelled,
    TrainResult,
    TrainStatus,
    done_fields,
    is_oom,
    summary,
)

RUN_FILE = "run.json"
LOSS_PLOT = "loss.png"


def finish(run: Run, loop: LoopState) -> TrainResult:
    """Save what the run keeps, evaluate it (main process) and report; returns the result."""
    result = _saved_result(run, loop)
    run.meta.update(result.as_dict())
    if run.accelerator.is_main_process:
        _write_loss_png(run.run_dir / LOSS_PLOT, loop.losses)
        if result.status is TrainStatus.SUCCESS and run.cfg.eval:
            _free_trainer(run)
            _evaluate(run, result)
        run.meta.update(metrics=result.metrics, promote=result.promote)
        _write_json(run.run_dir / RUN_FILE, run.meta)
        run.progress.emit(
            "done", status=result.status.value, message=summary(result), **done_fields(result)
        )
    return result


def _saved_result(run: Run, loop: LoopState) -> TrainResult:
    """The loop's outcome, with a checkpoint when it stopped early and the adapter unless it
    was cancelled."""
    seconds = time.monotonic() - run.started
    tps_final = loop.tokens_seen / (time.monotonic() - loop.t0) if loop.tokens_seen else 0.0
    result = TrainResult(
        TrainStatus.SUCCESS,
        str(run.run_dir),
        steps=loop.step,
        total_steps=run.total_steps,
        final_loss=loop.last_loss,
        train_tokens=loop.tokens_seen,
        tokens_per_s=round(tps_final, 1),
        seconds=round(seconds, 2),
        stop_reason=loop.stop_reason,
    )
    cancelled = loop.stop_reason == "cancelled"
    if cancelled or loop.step < run.total_steps:
        result.checkpoint = str(checkpoint(run, loop))
    if cancelled:
        result.status = TrainStatus.CANCELED
        result.error = f"cancelled at step {loop.step}/{run.total_steps}; resume with --resume"
        return result
    if loop.step == 0:
        raise TrainingError("the time budget ended before the first step; raise --max-minutes")
    meta = {"run": str(run.run_dir), "steps": loop.step, "final_loss": loop.last_loss}
    adapter = save_adapter(run.run_dir, run.prepared, run.model, run.accelerator, meta)
    result.adapter_dir = str(adapter)
    run.stops.cancelled()  # latch a cancel that came after the last step before clearing it
    clear_cancel_file(run.run_dir)
    return result


def _free_trainer(run: Run) -> None:
    """Give back the trainer's memory before the evaluation loads its own engine (model,
    optimizer state and activations: several GB even for a small model)."""
    run.model = run.optimizer = run.scheduler = None
    run.prepared.model = None
    run.accelerator.free_memory()
    gc.collect()


def _evaluate(run: Run, result: TrainResult) -> None:
    """:func:`evaluate_run`, its cancel or failure recorded in ``result`` (never promoted)."""
    try:
        evaluate_run(run, result)
    except EvaluationCancelled:  # the adapter is saved; nothing was compared
        result.status = TrainStatus.CANCELED
        result.error = (
            f"cancelled during evaluation; adapter kept at {result.adapter_dir}, not promoted"
        )
        result.metrics = {"error": "evaluation cancelled"}
        result.promote = False
    except Exception as exc:  # the adapter is saved: report, do not promote
        traceback.print_exc(file=sys.stderr)
        reason = "out of memory" if is_oom(exc) else f"{type(exc).__name__}: {exc}"
        result.metrics = {"error": f"evaluation failed: {reason}"}
        result.promote = False


def evaluate_run(run: Run, result: TrainResult) -> None:
    """Base (or served adapter) vs the new adapter on the held-out files, as the server prompts:
    with repository context from every other file of the dataset (training files included, as
    the server's index holds them; a hole's own file never)."""
    from training.evaluate import evaluate_adapter, gate, write_report

    cfg, split, progress, stops = run.cfg, run.data.split, run.progress, run.stops
    if not split.validation:
        result.metrics = {"error": "no validation files"}
        return

    def on_hole(done: int, total: int) -> None:
        progress.emit("eval", done=done, total=total)  # both sides counted
        if stops.cancelled():
            raise EvaluationCancelled

    if stops.cancelled():
        raise EvaluationCancelled
    progress.emit("eval", message="evaluating base vs adapter on held-out files")
    report = evaluate_adapter(
        split.validation,
        base_model=resolve_base_model(cfg.base_model),
        adapter=result.adapter_dir,
        baseline_adapter=cfg.served_adapter,
        max_holes=cfg.max_holes,
        max_new_tokens=cfg.eval_max_new_tokens,
        seed=cfg.seed,
        device="cpu" if cfg.device == "cpu" else "auto",
        on_hole=on_hole,
        max_minutes=cfg.eval_max_minutes or cfg.max_minutes,
        context_records=split.train + split.validation,
        repo_name=repo_name(cfg),
    )
    decision = gate(report, metric=cfg.gate_metric, tolerance=cfg.gate_tolerance)
    report["gate"] = decision
    write_report(report, run.run_dir)
    result.metrics = report
    result.promote = bool(decision["promote"])


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def _write_loss_png(path: Path, losses: list[tuple[int, float]]) -> None:
    if not losses:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([s for s, _ in losses], [v for _, v in losses], lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
