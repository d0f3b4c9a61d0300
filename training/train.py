"""LoRA fine-tuning on a workspace dataset: ``codellama-train`` / ``python -m training.train``.

A custom loop on 🤗 Accelerate rather than the HF ``Trainer``: packed rows carry per-document
``position_ids`` and no attention mask (Trainer's collators and ``remove_unused_columns`` fight
that), every optimizer step must emit one JSON progress line and check the cancel file/event and
the wall-clock budget, and checkpoints hold only the adapter + optimizer (not the base model).
Accelerate still gives DDP/FSDP, mixed precision and ``accelerate launch`` unchanged.

Outputs in the run directory: ``adapter/`` (PEFT adapter + tokenizer + ``codellama_adapter.json``;
written only when training finishes or stops at its budget, never on cancel), ``checkpoints/``,
``run.json``, ``progress.jsonl``, ``loss.png`` and ``eval.json``/``eval.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.config import TrainConfig, add_arguments, config_from_args
from training.data import (
    TrainingError,
    dataset_hash,
    load_training_records,
    resolve_base_model,
)
from training.progress import ProgressBar, ProgressWriter, read_events

if TYPE_CHECKING:
    from training.split import Split

CANCEL_FILE = "CANCEL"
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
RUN_FILE = "run.json"


class TrainStatus(str, Enum):  # noqa: UP042 -- str() of members is relied on as before
    """How a run ended."""

    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass
class TrainResult:
    """What :func:`train` returns (never raises for user errors, OOM or interrupts)."""

    status: TrainStatus
    run_dir: str
    adapter_dir: str | None = None
    checkpoint: str | None = None
    error: str = ""
    steps: int = 0
    total_steps: int = 0
    final_loss: float | None = None
    train_tokens: int = 0
    tokens_per_s: float = 0.0
    seconds: float = 0.0
    stop_reason: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    promote: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        d = dict(self.__dict__)
        d["status"] = self.status.value
        return d


class EvaluationCancelled(Exception):
    """The run was cancelled while its adapter was being evaluated (raised between holes)."""


# ---------------------------------------------------------------------------------------------
# data


def _repo_name(cfg: TrainConfig) -> str:
    """The repository name the server would put in this workspace's prompts."""
    from model_runtime.retrieval import repo_name_for

    source = cfg.workspace or cfg.dataset
    return cfg.repo_name or (repo_name_for(source) if source else "")


# ---------------------------------------------------------------------------------------------
# model


@dataclass
class Prepared:
    """Model, tokenizer and template ready for LoRA training."""

    model: Any
    tokenizer: Any
    template: Any
    model_path: str
    added_tokens: list[str]
    trainable_token_ids: list[int]
    dtype: str = ""
    """Weight dtype of the base model (``float32``, ``bfloat16`` …)."""


def _torch_dtype(name: str, device: str, model: str = "") -> Any:
    """The training dtype: the loader's choice for serving ``model`` on ``device``.

    ``auto`` resolves exactly as the runtime loader does (bf16 on capable CUDA and on CPUs with
    native bf16, else fp16/fp32), so an adapter is trained on the weights it is served with.
    In bf16 the frozen base weights and activations are bf16 while PEFT keeps the LoRA weights
    (and so the optimizer) in fp32.
    """
    import torch

    from model_runtime.loader import ModelLoadError, resolve_dtype

    try:
        chosen = resolve_dtype(name, device, model)
    except ModelLoadError as exc:
        raise TrainingError(f"--dtype: {exc}") from None
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[chosen]


def prepare_model(cfg: TrainConfig, device: str) -> Prepared:
    """Load the base model, add FIM tokens when its tokenizer has none, wrap it with LoRA."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from model_runtime.fim import detect_template, template_by_name
    from model_runtime.spec import resolve_model

    spec = resolve_base_model(cfg.base_model)
    path = resolve_model(spec)
    tokenizer: Any = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    template = detect_template(tokenizer)
    added: list[str] = []
    trainable_ids: list[int] = []
    if not template.supports_fim:
        fim_tokens = list(template.fim_tokens)
        vocab = tokenizer.get_vocab()
        added = [t for t in fim_tokens if t not in vocab]
        if added:
            tokenizer.add_tokens(added, special_tokens=True)
        template = template_by_name("starcoder", tokenizer)
        trainable_ids = sorted(int(tokenizer.convert_tokens_to_ids(t)) for t in fim_tokens)
    dtype = _torch_dtype(cfg.dtype, device, spec)
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=dtype,
        attn_implementation=cfg.attn_implementation,
        trust_remote_code=cfg.trust_remote_code,
    )
    rows = int(model.get_input_embeddings().weight.shape[0])  # type: ignore[index]
    if len(tokenizer) > rows:
        model.resize_token_embeddings(len(tokenizer))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.convert_ids_to_tokens(0)
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    torch.manual_seed(cfg.seed)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=_target_modules(model, cfg.target_modules),
        task_type="CAUSAL_LM",
        trainable_token_indices=(
            {_embedding_name(model): trainable_ids} if trainable_ids else None
        ),
    )
    peft_model = get_peft_model(model, lora)
    dtype_name = str(dtype).removeprefix("torch.")
    return Prepared(peft_model, tokenizer, template, spec, added, trainable_ids, dtype_name)


def _target_modules(model: Any, wanted: tuple[str, ...]) -> list[str] | str:
    import torch

    if wanted == ("all-linear",):
        return "all-linear"
    names = {
        n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
    }
    found = [w for w in wanted if w in names]
    if not found:
        raise TrainingError(
            f"none of --target-modules {','.join(wanted)} exist in this model; "
            f"its linear layers are: {', '.join(sorted(names))} (or use all-linear)"
        )
    return found


def _embedding_name(model: Any) -> str:
    emb = model.get_input_embeddings()
    for name, module in model.named_modules():
        if module is emb:
            return name.rsplit(".", 1)[-1]
    return "embed_tokens"


# ---------------------------------------------------------------------------------------------
# checkpoints


def latest_checkpoint(run_dir: Path) -> Path | None:
    """Newest complete checkpoint directory (``state.json`` is written last)."""
    root = run_dir / CHECKPOINTS_DIR
    done = (
        sorted(p for p in root.glob("step-*") if (p / "state.json").is_file())
        if root.is_dir()
        else []
    )
    return done[-1] if done else None


def _save_checkpoint(
    run_dir: Path,
    step: int,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    accelerator: Any,
    state: dict[str, Any],
) -> Path:
    import torch

    final = run_dir / CHECKPOINTS_DIR / f"step-{step:06d}"
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)  # collective under FSDP
    if accelerator.is_main_process:
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        accelerator.unwrap_model(model).save_pretrained(
            str(tmp), state_dict=state_dict, save_embedding_layers=False
        )
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in sorted((run_dir / CHECKPOINTS_DIR).glob("step-*"))[:-2]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _load_checkpoint(
    ckpt: Path, model: Any, optimizer: Any, scheduler: Any, accelerator: Any
) -> dict[str, Any]:
    import torch
    from peft.utils import load_peft_weights, set_peft_model_state_dict

    unwrapped = accelerator.unwrap_model(model)
    weights = load_peft_weights(str(ckpt), device=str(accelerator.device))
    set_peft_model_state_dict(unwrapped, weights)
    try:
        optimizer.load_state_dict(
            torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True)
        )
    except (ValueError, RuntimeError, KeyError) as exc:  # e.g. sharded (FSDP) optimizer state
        warnings.warn(f"optimizer state not restored ({exc}); moments restart", stacklevel=2)
    scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=True))
    state: dict[str, Any] = json.loads((ckpt / "state.json").read_text())
    return state


def save_adapter(
    run_dir: Path, prepared: Prepared, model: Any, accelerator: Any, meta: dict[str, Any]
) -> Path:
    """Write the final adapter atomically (tmp dir + rename) with tokenizer and metadata."""
    from model_runtime.loader import write_adapter_meta

    final = run_dir / ADAPTER_DIR
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        tmp = run_dir / (ADAPTER_DIR + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        # PEFT's save_pretrained keeps only the adapter keys of the full state dict.
        accelerator.unwrap_model(model).save_pretrained(
            str(tmp), state_dict=state_dict, save_embedding_layers=False
        )
        if prepared.added_tokens:
            prepared.tokenizer.save_pretrained(str(tmp))
        write_adapter_meta(
            tmp,
            base_model=prepared.model_path,
            template=prepared.template.name,
            # Newly added FIM tokens are learnt only partly in a short run: serve SPM prompts,
            # which degrade to continuing the prefix (see LoadedModel.fim_order).
            fim_order="spm" if prepared.added_tokens else "psm",
            **meta,
        )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    accelerator.wait_for_everyone()
    return final


# ---------------------------------------------------------------------------------------------
# cancel / budget


class StopSignals:
    """Cancel sources checked once per step: an event, a ``CANCEL`` file, SIGINT/SIGTERM."""

    def __init__(self, run_dir: Path, cancel: threading.Event | None) -> None:
        self.run_dir = run_dir
        self.event = cancel or threading.Event()
        self._old: dict[Any, Any] = {}

    def cancelled(self) -> bool:
        """True once any cancel source fired."""
        if not self.event.is_set() and (self.run_dir / CANCEL_FILE).exists():
            self.event.set()
        return self.event.is_set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignals]:
        """Turn SIGINT/SIGTERM into a cancel at the next step (main thread only)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, lambda *_: self.event.set())
        try:
            yield self
        finally:
            for sig, handler in self._old.items():
                signal.signal(sig, handler)
            self._old.clear()


def _is_oom(exc: BaseException) -> bool:
    """CUDA OOM, Python ``MemoryError`` or torch's CPU allocator failure."""
    text = str(exc).lower()
    return (
        isinstance(exc, MemoryError)
        or type(exc).__name__ == "OutOfMemoryError"
        or "out of memory" in text
        or "can't allocate memory" in text
        or "cannot allocate memory" in text
    )


# ---------------------------------------------------------------------------------------------
# the loop


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
            (run_dir / CANCEL_FILE).unlink(missing_ok=True)
        stops = StopSignals(run_dir, cancel)
        started = time.monotonic()
        with stops.installed():
            return _train(cfg, run_dir, stops, started, json_progress, progress_sink, state)
    except TrainingError as exc:
        result = TrainResult(TrainStatus.FAILED, str(run_dir), error=str(exc))
    except KeyboardInterrupt:
        result = TrainResult(TrainStatus.CANCELED, str(run_dir), error="interrupted")
    except Exception as exc:
        if _is_oom(exc):
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
            "done", status=result.status.value, message=summary(result), **_done_fields(result)
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
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_cosine_schedule_with_warmup

    from training.examples import build_examples
    from training.loss import causal_lm_loss
    from training.packing import collate, pack_sequences, padding_fraction, plan_batches
    from training.split import split_records

    accelerator = Accelerator(cpu=cfg.device == "cpu" or not torch.cuda.is_available())
    set_seed(cfg.seed)
    main = accelerator.is_main_process
    sink = (
        progress_sink if progress_sink is not None else (None if json_progress else ProgressBar())
    )
    progress = ProgressWriter(
        run_dir, json_stream=sys.stdout if json_progress else None, sink=sink, enabled=main
    )
    state["progress"] = progress
    if main and not cfg.resume:
        (run_dir / "progress.jsonl").unlink(missing_ok=True)

    records = load_training_records(cfg)
    split = split_records(records, val_fraction=cfg.val_fraction)
    if not split.train:
        raise TrainingError("every file landed in validation; lower --val-fraction")
    prepared = prepare_model(cfg, str(accelerator.device))
    tokenizer, template = prepared.tokenizer, prepared.template
    examples, ex_stats = build_examples(
        split.train,
        tokenizer,
        template,
        context_len=cfg.context_len,
        fim_rate=cfg.fim_rate,
        spm_rate=cfg.spm_rate,
        seed=cfg.seed,
        repo_name=_repo_name(cfg),
    )
    rows = pack_sequences([e.input_ids for e in examples], cfg.context_len)
    world, rank = accelerator.num_processes, accelerator.process_index
    if len(rows) < world:
        raise TrainingError(f"only {len(rows)} packed rows for {world} processes; add data")

    def epoch_batches(epoch: int) -> list[list[int]]:
        plan = plan_batches(rows, cfg.batch_size, seed=cfg.seed * 1000 + epoch)
        if len(plan) < world:  # tiny data: every process still takes one batch
            return [plan[rank % len(plan)]]
        usable = len(plan) - len(plan) % world
        return plan[rank:usable:world]

    micro_per_epoch = len(epoch_batches(0))
    steps_per_epoch = max(1, micro_per_epoch // cfg.grad_accum)
    total_steps = cfg.max_steps or max(1, math.ceil(steps_per_epoch * cfg.epochs))
    pad_frac = padding_fraction(rows, plan_batches(rows, cfg.batch_size, seed=cfg.seed * 1000))

    model = prepared.model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, min(cfg.warmup_steps, total_steps // 2), total_steps
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()

    step, epoch, micro_offset = 0, 0, 0
    losses: list[tuple[int, float]] = []
    ckpt = latest_checkpoint(run_dir) if cfg.resume else None
    if cfg.resume and ckpt is None and main:
        progress.emit("message", message="--resume: no checkpoint found, starting fresh")
    if ckpt is not None:
        state = _load_checkpoint(ckpt, model, optimizer, scheduler, accelerator)
        step, epoch, micro_offset = state["step"], state["epoch"], state["micro_offset"]
        losses = [
            (e["step"], e["loss"])
            for e in read_events(run_dir / "progress.jsonl")
            if e.get("event") == "step" and e["step"] <= step
        ]

    n_trainable = sum(p.numel() for p in params)
    chunk_tokens = _loss_chunk_tokens(cfg, model)
    meta: dict[str, Any] = {
        "base_model": prepared.model_path,
        "template": template.name,
        "added_tokens": prepared.added_tokens,
        "dataset_hash": dataset_hash(split.train + split.validation),
        "train_files": len(split.train),
        "validation_files": sorted(split.validation_paths),
        "examples": ex_stats.as_dict(),
        "packed_rows": len(rows),
        "padding_fraction": round(pad_frac, 5),
        "trainable_parameters": n_trainable,
        "processes": world,
        "device": str(accelerator.device),
        "dtype": prepared.dtype,
        "loss_chunk_tokens": chunk_tokens,
        "settings": cfg.as_dict(),
    }
    progress.emit(
        "start",
        total=total_steps,
        step=step,
        rows=len(rows),
        examples=ex_stats.chunks,
        padding_fraction=round(pad_frac, 5),
        resumed_from=str(ckpt) if ckpt else None,
    )

    tokens_seen, t0 = 0, time.monotonic()
    budget_s = cfg.max_minutes * 60 if cfg.max_minutes else None
    stop_reason, last_loss = "completed", None
    pad_id = int(tokenizer.pad_token_id)
    step_times: list[float] = []

    def checkpoint_state() -> dict[str, Any]:
        return {"step": step, "epoch": epoch, "micro_offset": micro_offset, "total": total_steps}

    while step < total_steps:
        batches = epoch_batches(epoch)
        if micro_offset >= len(batches):
            epoch, micro_offset = epoch + 1, 0
            continue
        # one agreement per step, so every process stops at the same step
        flags = torch.tensor(
            [
                float(stops.cancelled()),
                float(
                    budget_s is not None
                    and (time.monotonic() - started)
                    + (sum(step_times[-5:]) / max(1, len(step_times[-5:])))
                    > budget_s
                ),
            ],
            device=accelerator.device,
        )
        if world > 1:
            flags = accelerator.reduce(flags, reduction="sum")
        if flags[0] > 0:
            stop_reason = "cancelled"
            break
        if flags[1] > 0:
            stop_reason = "time_budget"
            break
        ts = time.monotonic()
        group = batches[micro_offset : micro_offset + cfg.grad_accum]
        n_items = sum(sum(len(rows[i]) - len(rows[i].doc_lengths) for i in b) for b in group)
        step_loss, step_tokens = 0.0, 0
        for k, b in enumerate(group):
            batch = {
                key: v.to(accelerator.device)
                for key, v in collate([rows[i] for i in b], pad_id).items()
            }
            ctx = accelerator.no_sync(model) if k < len(group) - 1 else contextlib.nullcontext()
            with ctx:
                loss = causal_lm_loss(
                    model, batch, num_items=max(1, n_items), chunk_tokens=chunk_tokens
                )
                accelerator.backward(loss)
            step_loss += float(loss.detach())
            step_tokens += sum(len(rows[i]) for i in b)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        micro_offset += len(group)
        stats = torch.tensor([step_loss, float(step_tokens)], device=accelerator.device)
        if world > 1:
            stats = accelerator.reduce(stats, reduction="sum")
        last_loss = float(stats[0]) / world
        tokens_seen += int(stats[1])
        step_times.append(time.monotonic() - ts)
        elapsed = time.monotonic() - t0
        tps = tokens_seen / elapsed if elapsed > 0 else 0.0
        eta = (total_steps - step) * (elapsed / max(1, len(step_times)))
        done_frac = step / total_steps
        if budget_s is not None:  # a time budget may end the run before total_steps
            used = time.monotonic() - started
            eta = min(eta, max(0.0, budget_s - used))
            done_frac = max(done_frac, min(1.0, used / budget_s))
        losses.append((step, last_loss))
        progress.emit(
            "step",
            step=step,
            total=total_steps,
            loss=round(last_loss, 5),
            tokens_per_s=round(tps, 1),
            eta_s=round(eta, 1),
            percent=round(100 * done_frac, 1),
            budget_s=budget_s,
            time_bound=budget_s is not None and done_frac > step / total_steps,
            epoch=epoch,
            lr=scheduler.get_last_lr()[0],
        )
        if step % cfg.checkpoint_every == 0 and step < total_steps:
            _save_checkpoint(
                run_dir, step, model, optimizer, scheduler, accelerator, checkpoint_state()
            )
            progress.emit("checkpoint", step=step)

    seconds = time.monotonic() - started
    tps_final = tokens_seen / (time.monotonic() - t0) if tokens_seen else 0.0
    result = TrainResult(
        TrainStatus.SUCCESS,
        str(run_dir),
        steps=step,
        total_steps=total_steps,
        final_loss=last_loss,
        train_tokens=tokens_seen,
        tokens_per_s=round(tps_final, 1),
        seconds=round(seconds, 2),
        stop_reason=stop_reason,
    )
    if stop_reason == "cancelled" or step < total_steps:
        result.checkpoint = str(
            _save_checkpoint(
                run_dir, step, model, optimizer, scheduler, accelerator, checkpoint_state()
            )
        )
    if stop_reason == "cancelled":
        result.status = TrainStatus.CANCELED
        result.error = f"cancelled at step {step}/{total_steps}; resume with --resume"
    else:
        if step == 0:
            raise TrainingError("the time budget ended before the first step; raise --max-minutes")
        adapter = save_adapter(
            run_dir,
            prepared,
            model,
            accelerator,
            {"run": str(run_dir), "steps": step, "final_loss": last_loss},
        )
        result.adapter_dir = str(adapter)
        stops.cancelled()  # latch a cancel that came after the last step before clearing it
        (run_dir / CANCEL_FILE).unlink(missing_ok=True)
    meta.update(result.as_dict())
    if main:
        _write_loss_png(run_dir / "loss.png", losses)
        if result.status is TrainStatus.SUCCESS and cfg.eval:
            # The evaluation loads its own engine: give back the trainer's memory first
            # (model, optimizer state and activations: several GB even for a small model).
            del model, optimizer, scheduler
            accelerator.free_memory()
            gc.collect()
            try:
                _evaluate_run(cfg, run_dir, split, result, progress, stops)
            except EvaluationCancelled:  # the adapter is saved; nothing was compared
                result.status = TrainStatus.CANCELED
                result.error = (
                    f"cancelled during evaluation; adapter kept at {result.adapter_dir}, "
                    "not promoted"
                )
                result.metrics = {"error": "evaluation cancelled"}
                result.promote = False
            except Exception as exc:  # the adapter is saved: report, do not promote
                traceback.print_exc(file=sys.stderr)
                reason = "out of memory" if _is_oom(exc) else f"{type(exc).__name__}: {exc}"
                result.metrics = {"error": f"evaluation failed: {reason}"}
                result.promote = False
        meta.update(metrics=result.metrics, promote=result.promote)
        _write_json(run_dir / RUN_FILE, meta)
        progress.emit(
            "done", status=result.status.value, message=summary(result), **_done_fields(result)
        )
    state["done"] = True
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


def _loss_chunk_tokens(cfg: TrainConfig, model: Any) -> int | None:
    """Positions per loss chunk: ``None`` (auto size), or 0 for the model's full-logits loss."""
    from training.loss import supports_chunked_loss

    if cfg.loss_chunk_tokens == 0:
        return 0
    if not supports_chunked_loss(model):
        warnings.warn(
            "this model's forward has no logits_to_keep (or post-processes its logits): "
            "computing the loss from full logits (more memory)",
            stacklevel=2,
        )
        return 0
    return cfg.loss_chunk_tokens


def _done_fields(result: TrainResult) -> dict[str, Any]:
    return {
        "adapter": result.adapter_dir,
        "checkpoint": result.checkpoint,
        "steps": result.steps,
        "total": result.total_steps,
        "loss": result.final_loss,
        "promote": result.promote,
        "metrics": result.metrics,
        "error": result.error,
    }


def _evaluate_run(
    cfg: TrainConfig,
    run_dir: Path,
    split: Split,
    result: TrainResult,
    progress: ProgressWriter,
    stops: StopSignals,
) -> None:
    """Base (or served adapter) vs the new adapter on the held-out files, as the server prompts:
    with repository context from every other file of the dataset (training files included, as
    the server's index holds them; a hole's own file never)."""
    from training.evaluate import evaluate_adapter, gate, write_report

    validation = split.validation
    if not validation:
        result.metrics = {"error": "no validation files"}
        return

    def on_hole(done: int, total: int) -> None:
        _emit_eval(progress, done, total)
        if stops.cancelled():
            raise EvaluationCancelled

    if stops.cancelled():
        raise EvaluationCancelled
    progress.emit("eval", message="evaluating base vs adapter on held-out files")
    report = evaluate_adapter(
        validation,
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
        repo_name=_repo_name(cfg),
    )
    decision = gate(report, metric=cfg.gate_metric, tolerance=cfg.gate_tolerance)
    report["gate"] = decision
    write_report(report, run_dir)
    result.metrics = report
    result.promote = bool(decision["promote"])


def _emit_eval(progress: ProgressWriter, done: int, total: int) -> None:
    """One ``eval`` progress event per finished hole (both sides counted)."""
    progress.emit("eval", done=done, total=total)


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


def summary(result: TrainResult) -> str:
    """One human sentence about a finished run."""
    if result.status is TrainStatus.FAILED:
        return f"training failed: {result.error}"
    if result.status is TrainStatus.CANCELED:
        kept = f" (checkpoint {result.checkpoint})" if result.checkpoint else ""
        return f"training cancelled: {result.error}{kept}"
    text = f"trained {result.steps} steps, final loss {result.final_loss:.3f}, adapter {result.adapter_dir}"
    gate_info = result.metrics.get("gate") if result.metrics else None
    if gate_info:
        text += f"; {gate_info['reason']}"
    elif result.metrics and result.metrics.get("error"):
        text += f"; {result.metrics['error']}: not promoted"
    return text


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
