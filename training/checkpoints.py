"""What a run keeps on disk to stop and go on: checkpoints, the final adapter, the cancel file.

A checkpoint (``checkpoints/step-NNNNNN/``) holds only the adapter, ``optimizer.pt``,
``scheduler.pt`` and ``state.json`` (step, epoch, position in the epoch), never the base model;
``state.json`` is written last, so a directory without it is incomplete and ignored, and the
last two are kept. The adapter (``adapter/``) is written atomically (temp dir + rename) with its
tokenizer when FIM tokens were added and ``codellama_adapter.json``. A run is cancelled by an
event, a ``CANCEL`` file in the run directory or SIGINT/SIGTERM (:class:`StopSignals`).

Under Accelerate every process calls the save functions (the state dict is gathered
collectively under FSDP); only the main process writes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.lora import Prepared

CANCEL_FILE = "CANCEL"
ADAPTER_DIR = "adapter"
CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "state.json"


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


def clear_cancel_file(run_dir: Path) -> None:
    """Remove a ``CANCEL`` file (a stale one at start-up, or the one a finished run honoured)."""
    (run_dir / CANCEL_FILE).unlink(missing_ok=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """Newest complete checkpoint directory (``state.json`` is written last)."""
    root = run_dir / CHECKPOINTS_DIR
    done = (
        sorted(p for p in root.glob("step-*") if (p / STATE_FILE).is_file())
        if root.is_dir()
        else []
    )
    return done[-1] if done else None


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    accelerator: Any,
    state: dict[str, Any],
) -> Path:
    """Write ``checkpoints/step-NNNNNN`` (adapter, optimizer, scheduler, ``state``); keep two."""
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
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in sorted((run_dir / CHECKPOINTS_DIR).glob("step-*"))[:-2]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(
    ckpt: Path, model: Any, optimizer: Any, scheduler: Any, accelerator: Any
) -> dict[str, Any]:
    """Restore adapter weights, optimizer and scheduler from ``ckpt``; returns its state."""
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
    state: dict[str, Any] = json.loads((ckpt / STATE_FILE).read_text())
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
