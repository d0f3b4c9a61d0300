"""How a training run ended: :class:`TrainStatus`, :class:`TrainResult` and its one-line summary.

As in peft's ``method_comparison`` runner, :func:`training.train.train` never raises for a user
error, an out-of-memory or an interrupt: it returns a result whose status and message say what
happened. Kept apart from the loop so the checkpoint, loop and finish modules can name these
types without importing the trainer (``training.train`` re-exports them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class TrainStatus(str, Enum):  # noqa: UP042 -- str() of members is relied on as before
    """How a run ended."""

    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass
class TrainResult:
    """What :func:`training.train.train` returns (never raises for user errors, OOM or
    interrupts)."""

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


def is_oom(exc: BaseException) -> bool:
    """CUDA OOM, Python ``MemoryError`` or torch's CPU allocator failure."""
    text = str(exc).lower()
    return (
        isinstance(exc, MemoryError)
        or type(exc).__name__ == "OutOfMemoryError"
        or "out of memory" in text
        or "can't allocate memory" in text
        or "cannot allocate memory" in text
    )


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


def done_fields(result: TrainResult) -> dict[str, Any]:
    """The fields of the ``done`` progress event (besides ``status`` and ``message``)."""
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
