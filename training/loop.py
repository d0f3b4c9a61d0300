"""The training loop: optimizer steps over the packed rows until done, cancelled or out of time.

:func:`fit` runs steps of ``--grad-accum`` micro-batches. Before each step every process agrees
(one all-reduce) on whether to stop, so all stop at the same step: on a cancel (event, ``CANCEL``
file, signal) or when the next step would end after ``--max-minutes`` (judged by the mean of the
last five steps). After each step it emits one ``step`` progress event and, every
``--checkpoint-every`` steps, a checkpoint. What a run has set up is a :class:`Run`; where the
loop stands (what a checkpoint records) is a :class:`LoopState`.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.checkpoints import save_checkpoint

if TYPE_CHECKING:
    from training.checkpoints import StopSignals
    from training.config import TrainConfig
    from training.data import TrainData
    from training.lora import Prepared
    from training.progress import ProgressWriter


@dataclass
class Run:
    """Everything a set-up run holds: config, accelerator, data, model and optimizer."""

    cfg: TrainConfig
    run_dir: Path
    accelerator: Any
    progress: ProgressWriter
    stops: StopSignals
    started: float
    """``time.monotonic()`` when the run began (model loading counts against the budget)."""
    data: TrainData
    prepared: Prepared
    model: Any
    """The LoRA model as prepared by Accelerate."""
    optimizer: Any
    scheduler: Any
    total_steps: int
    chunk_tokens: int | None
    """Positions per loss chunk (:func:`training.lora.loss_chunk_tokens`)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """What ``run.json`` records."""

    @property
    def budget_s(self) -> float | None:
        """The ``--max-minutes`` budget in seconds, or ``None``."""
        return self.cfg.max_minutes * 60 if self.cfg.max_minutes else None


@dataclass
class LoopState:
    """Where the loop stands: step, epoch, position in the epoch, losses and throughput."""

    step: int = 0
    epoch: int = 0
    micro_offset: int = 0
    """Micro-batches of ``epoch`` already trained on."""
    losses: list[tuple[int, float]] = field(default_factory=list)
    """(step, loss) for ``loss.png``."""
    tokens_seen: int = 0
    last_loss: float | None = None
    step_times: list[float] = field(default_factory=list)
    stop_reason: str = "completed"
    """``completed``, ``cancelled`` or ``time_budget``."""
    t0: float = 0.0
    """``time.monotonic()`` when the loop began (throughput is measured from here)."""

    def checkpoint_state(self, total_steps: int) -> dict[str, Any]:
        """What ``state.json`` of a checkpoint holds (read back by ``--resume``)."""
        return {
            "step": self.step,
            "epoch": self.epoch,
            "micro_offset": self.micro_offset,
            "total": total_steps,
        }


def fit(run: Run, loop: LoopState) -> LoopState:
    """Train from ``loop`` until ``run.total_steps``, a cancel or the time budget."""
    loop.t0 = time.monotonic()
    while loop.step < run.total_steps:
        batches = run.data.epoch_batches(loop.epoch)
        if loop.micro_offset >= len(batches):
            loop.epoch, loop.micro_offset = loop.epoch + 1, 0
            continue
        stop = _agreed_stop(run, loop)
        if stop:
            loop.stop_reason = stop
            break
        ts = time.monotonic()
        group = batches[loop.micro_offset : loop.micro_offset + run.cfg.grad_accum]
        step_loss, step_tokens = _optimizer_step(run, group)
        loop.step += 1
        loop.micro_offset += len(group)
        _record_step(run, loop, step_loss, step_tokens, ts)
        if loop.step % run.cfg.checkpoint_every == 0 and loop.step < run.total_steps:
            checkpoint(run, loop)
            run.progress.emit("checkpoint", step=loop.step)
    return loop


def checkpoint(run: Run, loop: LoopState) -> Path:
    """Save a checkpoint of the run where the loop stands (every process calls it)."""
    return save_checkpoint(
        run.run_dir,
        loop.step,
        run.model,
        run.optimizer,
        run.scheduler,
        run.accelerator,
        loop.checkpoint_state(run.total_steps),
    )


def _agreed_stop(run: Run, loop: LoopState) -> str | None:
    """``cancelled`` / ``time_budget`` when any process wants to stop before this step (one
    agreement per step, so every process stops at the same step), else ``None``."""
    import torch

    budget_s = run.budget_s
    recent = loop.step_times[-5:]
    out_of_time = (
        budget_s is not None
        and (time.monotonic() - run.started) + (sum(recent) / max(1, len(recent))) > budget_s
    )
    flags = torch.tensor(
        [float(run.stops.cancelled()), float(out_of_time)], device=run.accelerator.device
    )
    if run.accelerator.num_processes > 1:
        flags = run.accelerator.reduce(flags, reduction="sum")
    if flags[0] > 0:
        return "cancelled"
    if flags[1] > 0:
        return "time_budget"
    return None


def _optimizer_step(run: Run, group: list[list[int]]) -> tuple[float, int]:
    """Forward/backward over the micro-batches of ``group`` (gradients synchronised only on the
    last), then one optimizer and scheduler step; returns the summed loss and the tokens."""
    # Looked up at call time (not at import) so that a test can replace it.
    from training.loss import causal_lm_loss
    from training.packing import collate

    accelerator, model, rows = run.accelerator, run.model, run.data.rows
    pad_id = int(run.prepared.tokenizer.pad_token_id)
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
                model, batch, num_items=max(1, n_items), chunk_tokens=run.chunk_tokens
            )
            accelerator.backward(loss)
        step_loss += float(loss.detach())
        step_tokens += sum(len(rows[i]) for i in b)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return step_loss, step_tokens


def _record_step(
    run: Run, loop: LoopState, step_loss: float, step_tokens: int, step_began: float
) -> None:
    """Average the step's loss over the processes, count its tokens, emit its ``step`` event
    (``percent`` and ``eta_s`` also account for a time budget)."""
    import torch

    world = run.accelerator.num_processes
    stats = torch.tensor([step_loss, float(step_tokens)], device=run.accelerator.device)
    if world > 1:
        stats = run.accelerator.reduce(stats, reduction="sum")
    loop.last_loss = float(stats[0]) / world
    loop.tokens_seen += int(stats[1])
    loop.step_times.append(time.monotonic() - step_began)
    elapsed = time.monotonic() - loop.t0
    tps = loop.tokens_seen / elapsed if elapsed > 0 else 0.0
    eta = (run.total_steps - loop.step) * (elapsed / max(1, len(loop.step_times)))
    done_frac = loop.step / run.total_steps
    budget_s = run.budget_s
    if budget_s is not None:  # a time budget may end the run before total_steps
        used = time.monotonic() - run.started
        eta = min(eta, max(0.0, budget_s - used))
        done_frac = max(done_frac, min(1.0, used / budget_s))
    loop.losses.append((loop.step, loop.last_loss))
    run.progress.emit(
        "step",
        step=loop.step,
        total=run.total_steps,
        loss=round(loop.last_loss, 5),
        tokens_per_s=round(tps, 1),
        eta_s=round(eta, 1),
        percent=round(100 * done_frac, 1),
        budget_s=budget_s,
        time_bound=budget_s is not None and done_frac > loop.step / run.total_steps,
        epoch=loop.epoch,
        lr=run.scheduler.get_last_lr()[0],
    )
