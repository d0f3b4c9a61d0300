"""LoRA fine-tuning on a workspace dataset: ``codellama-train`` / ``python -m training.train``.

A custom loop on 🤗 Accelerate rather than the HF ``Trainer``: packed rows carry per-document
``position_ids`` and no attention mask (Trainer's collators and ``remove_unused_columns`` fight
that), every optimizer step must emit one JSON progress line and check the cancel file/event and
the wall-clock budget, and checkpoints hold only the adapter + optimizer (not the base model).
Accelerate still gives DDP/FSDP, mixed precision and ``accelerate launch`` unchanged.

Shaped like litgpt's ``setup → main → fit``: :func:`train` turns every ending into a
:class:`TrainResult`; ``_train`` is set-up (records and packed rows from :mod:`training.data`,
model and optimizer from :mod:`training.lora`, resume from :mod:`training.checkpoints`), the loop
(:func:`training.loop.fit`) and the finish (:func:`training.finish.finish`: adapter, evaluation,
``run.json``, the ``done`` event). This module keeps the names other code imports.

Outputs in the run directory: ``adapter/`` (PEFT adapter + tokenizer + ``codellama_adapter.json``;
written only when training finishes or stops at its budget, never on cancel), ``checkpoints/``,
``run.json``, ``progress.jsonl``, ``loss.png`` and ``eval.json``/``eval.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from training.checkpoints import (
    ADAPTER_DIR,
    CANCEL_FILE,
    CHECKPOINTS_DIR,
    StopSignals,
    clear_cancel_file,
    latest_checkpoint,
    load_checkpoint,
    save_adapter,
)
from training.config import TrainConfig, add_arguments, config_from_args
from training.data import TrainingError, dataset_hash, load_split, pack_training_data
from training.finish import RUN_FILE, finish
from training.loop import LoopState, Run, fit
from training.lora import Prepared, loss_chunk_tokens, make_optimizer, prepare_model
from training.progress import PROGRESS_FILE, ProgressBar, ProgressWriter, read_events
from training.result import (
    EvaluationCancelled,
    TrainResult,
    TrainStatus,
    done_fields,
    is_oom,
    summary,
)

__all__ = [
    "ADAPTER_DIR",
    "CANCEL_FILE",
    "CHECKPOINTS_DIR",
    "RUN_FILE",
    "EvaluationCancelled",
    "Prepared",
    "StopSignals",
    "TrainResult",
    "TrainStatus",
    "TrainingError",
    "build_parser",
    "latest_checkpoint",
    "main",
    "prepare_model",
    "save_adapter",
    "summary",
    "train",
]


def train(
    cfg: TrainConfig,
    *,
    cancel: threading.Event | None = None,
    json_progress: bool = False,
    progress_sink: Any = None,
) -> TrainResult:
    """Fine-tune ``cfg.base_model`` on the workspace; see the module docstring for outputs.

    Every run ends with exactly one ``done`` event (``status`` + ``error``/``message``), also
    when it fails: a user error, an out-of-memory, an unexpected exception (its traceback goes
    to stderr) or an interrupt.
    """
    if not cfg.output:
        result = TrainResult(TrainStatus.FAILED, "", error="give --output DIR for the run")
        _emit_final(result, None, None, json_progress, progress_sink)
        return result
    run_dir = Path(cfg.output).expanduser().resolve()
    state: dict[str, Any] = {}
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not cfg.resume:
            clear_cancel_file(run_dir)
        stops = StopSignals(run_dir, cancel)
        started = time.monotonic()
        with stops.installed():
            return _train(cfg, run_dir, stops, started, json_progress, progress_sink, state)
    except TrainingError as exc:
        result = TrainResult(TrainStatus.FAILED, str(run_dir), error=str(exc))
    except KeyboardInterrupt:
        result = TrainResult(TrainStatus.CANCELED, str(run_dir), error="interrupted")
    except Exception as exc:
        if is_oom(exc):
            error = f"out of memory: lower --batch-size or --context-len ({exc})"
        else:
            traceback.print_exc(file=sys.stderr)
            error = f"{type(exc).__name__}: {exc}"
        result = TrainResult(TrainStatus.FAILED, str(run_dir), error=error)
        with contextlib.suppress(Exception):
            result.checkpoint = str(latest_checkpoint(run_dir) or "") or None
    if not state.get("done"):
        _emit_final(result, run_dir, state.get("progress"), json_progress, progress_sink)
    return result


def _emit_final(
    result: TrainResult,
    run_dir: Path | None,
    progress: ProgressWriter | None,
    json_progress: bool,
    progress_sink: Any,
) -> None:
    """The ``done`` event of a run that ended early (main process only; never raises)."""
    if progress is None:
        if int(os.environ.get("RANK", "0") or 0) != 0:
            return
        progress = ProgressWriter(
            run_dir if run_dir is not None and run_dir.is_dir() else None,
            json_stream=sys.stdout if json_progress else None,
            sink=progress_sink,
        )
    with contextlib.suppress(Exception):
        progress.emit(
            "done", status=result.status.value, message=summary(result), **done_fields(result)
        )


def _train(
    cfg: TrainConfig,
    run_dir: Path,
    stops: StopSignals,
    started: float,
    json_progress: bool,
    progress_sink: Any,
    state: dict[str, Any],
) -> TrainResult:
    """Set-up → loop → finish. ``state`` tells :func:`train` the progress writer and whether
    the ``done`` event was sent."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(cpu=cfg.device == "cpu" or not torch.cuda.is_available())
    set_seed(cfg.seed)
    progress = ProgressWriter(
        run_dir,
        json_stream=sys.stdout if json_progress else None,
        sink=_progress_sink(json_progress, progress_sink),
        enabled=accelerator.is_main_process,
    )
    state["progress"] = progress
    run, loop = _setup(cfg, run_dir, accelerator, progress, stops, started)
    fit(run, loop)
    result = finish(run, loop)
    state["done"] = True
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


def _progress_sink(json_progress: bool, progress_sink: Any) -> Any:
    """The caller's sink; else a terminal bar unless the events go to stdout as JSON."""
    if progress_sink is not None:
        return progress_sink
    return None if json_progress else ProgressBar()


def _setup(
    cfg: TrainConfig,
    run_dir: Path,
    accelerator: Any,
    progress: ProgressWriter,
    stops: StopSignals,
    started: float,
) -> tuple[Run, LoopState]:
    """Data, model and optimizer (restored by ``--resume``); emits the ``start`` event."""
    if accelerator.is_main_process and not cfg.resume:
        (run_dir / PROGRESS_FILE).unlink(missing_ok=True)
    split = load_split(cfg)
    prepared = prepare_model(cfg, str(accelerator.device))
    world, rank = accelerator.num_processes, accelerator.process_index
    data = pack_training_data(
        cfg, split, prepared.tokenizer, prepared.template, world=world, rank=rank
    )
    total_steps = data.total_steps(cfg)
    pad_frac = data.padding_fraction()
    optimizer, scheduler, n_trainable = make_optimizer(cfg, prepared.model, total_steps)
    model, optimizer = accelerator.prepare(prepared.model, optimizer)
    model.train()
    run = Run(
        cfg=cfg,
        run_dir=run_dir,
        accelerator=accelerator,
        progress=progress,
        stops=stops,
        started=started,
        data=data,
        prepared=prepared,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        total_steps=total_steps,
        chunk_tokens=None,
    )
    loop, ckpt = _resume(run)
    run.chunk_tokens = loss_chunk_tokens(cfg, model)
    run.meta = _run_meta(run, pad_frac, n_trainable)
    progress.emit(
        "start",
        total=total_steps,
        step=loop.step,
        rows=len(data.rows),
        examples=data.example_stats.chunks,
        padding_fraction=round(pad_frac, 5),
        resumed_from=str(ckpt) if ckpt else None,
    )
    return run, loop


def _resume(run: Run) -> tuple[LoopState, Path | None]:
    """With ``--resume``: the loop where the newest checkpoint left it (adapter, optimizer and
    scheduler restored, the loss curve read back), and that checkpoint; else a fresh loop."""
    loop = LoopState()
    ckpt = latest_checkpoint(run.run_dir) if run.cfg.resume else None
    if run.cfg.resume and ckpt is None and run.accelerator.is_main_process:
        run.progress.emit("message", message="--resume: no checkpoint found, starting fresh")
    if ckpt is None:
        return loop, None
    saved = load_checkpoint(ckpt, run.model, run.optimizer, run.scheduler, run.accelerator)
    loop.step, loop.epoch, loop.micro_offset = saved["step"], saved["epoch"], saved["micro_offset"]
    loop.losses = [
        (e["step"], e["loss"])
        for e in read_events(run.run_dir / PROGRESS_FILE)
        if e.get("event") == "step" and e["step"] <= loop.step
    ]
    return loop, ckpt


def _run_meta(run: Run, pad_frac: float, n_trainable: int) -> dict[str, Any]:
    """What ``run.json`` records about the run's model, data and settings."""
    prepared, split = run.prepared, run.data.split
    return {
        "base_model": prepared.model_path,
        "template": prepared.template.name,
        "added_tokens": prepared.added_tokens,
        "dataset_hash": dataset_hash(split.train + split.validation),
        "train_files": len(split.train),
        "validation_files": sorted(split.validation_paths),
        "examples": run.data.example_stats.as_dict(),
        "packed_rows": len(run.data.rows),
        "padding_fraction": round(pad_frac, 5),
        "trainable_parameters": n_trainable,
        "processes": run.data.world,
        "device": str(run.accelerator.device),
        "dtype": prepared.dtype,
        "loss_chunk_tokens": run.chunk_tokens,
        "settings": run.cfg.as_dict(),
    }


# ---------------------------------------------------------------------------------------------
# CLI


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that remembers its usage error (for the JSON ``done`` event)."""

    last_error = ""

    def error(self, message: str) -> Any:
        self.last_error = message
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    """``codellama-train`` arguments (one flag per :class:`TrainConfig` field)."""
    parser = _Parser(
        prog="codellama-train", description="LoRA fine-tune a code model on a workspace dataset."
    )
    add_arguments(parser)
    parser.add_argument(
        "--progress",
        choices=["bar", "json", "none"],
        default="bar",
        help="bar: terminal progress bar; json: one JSON event per line on stdout",
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return parser


def _wants_json_progress(argv: list[str]) -> bool:
    """``--progress json`` (or ``--progress=json``) anywhere in ``argv``."""
    return any(
        a == "--progress=json" or (a == "--progress" and nxt == "json")
        for a, nxt in zip(argv, [*argv[1:], ""], strict=True)
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit code 0 success, 1 failed, 2 cancelled."""
    argv = sys.argv[1:] if argv is None else list(argv)
    json_progress = _wants_json_progress(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage error (2) or --help (0)
        if exc.code not in (0, None) and json_progress:
            reason = getattr(parser, "last_error", "") or "see the usage message"
            error = f"invalid command line: {reason}"
            _emit_final(TrainResult(TrainStatus.FAILED, "", error=error), None, None, True, None)
        raise
    try:
        cfg = config_from_args(args)
    except ValueError as exc:
        print(f"codellama-train: {exc}", file=sys.stderr)
        if args.progress == "json":
            failed = TrainResult(TrainStatus.FAILED, "", error=str(exc))
            _emit_final(failed, None, None, True, None)
        return 1
    sink = (lambda _e: None) if args.progress == "none" else None
    result = train(cfg, json_progress=args.progress == "json", progress_sink=sink)
    if args.json:
        print(json.dumps(result.as_dict(), default=str))
    elif args.progress != "json":
        print(summary(result), file=sys.stderr)
    return {TrainStatus.SUCCESS: 0, TrainStatus.FAILED: 1, TrainStatus.CANCELED: 2}[result.status]


if __name__ == "__main__":
    sys.exit(main())
