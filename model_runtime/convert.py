"""Casting a converted safetensors checkpoint to another dtype, once, beside the original.

:func:`model_runtime.spec.resolve_model` uses it for bundled models served or trained in bf16 or
fp16 (why: see ``spec._ensure_variant``). torch and safetensors are imported when called.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model_runtime.spec import ProgressFn

__all__ = ["cast_checkpoint"]


def cast_checkpoint(
    base: Path, target: Path, dtype: str, *, marker: str, progress: ProgressFn | None = None
) -> None:
    """Write ``target``: ``base``'s files with every floating tensor cast to ``dtype``
    (a temp dir renamed into place, so a crash leaves no half-written checkpoint). ``marker``
    is the file that says a directory is complete: copied with ``"dtype"`` added, last."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    if progress is not None:
        progress(0, 1, f"writing a {dtype} copy of {base.name} (one-time)")
    torch_dtype = getattr(torch, dtype)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for item in base.iterdir():
            if item.suffix == ".safetensors":
                tensors = {}
                with safe_open(str(item), "pt") as handle:
                    metadata = handle.metadata()
                    for key in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                        tensor = handle.get_tensor(key)
                        tensors[key] = (
                            tensor.to(torch_dtype) if tensor.is_floating_point() else tensor
                        )
                save_file(tensors, str(tmp / item.name), metadata=metadata)
                del tensors
            elif item.name == "config.json":
                config = json.loads(item.read_text())
                config["dtype"] = dtype
                (tmp / item.name).write_text(json.dumps(config, indent=2) + "\n")
            elif item.is_file() and item.name != marker:
                shutil.copy2(item, tmp / item.name)
        meta = json.loads((base / marker).read_text())
        (tmp / marker).write_text(json.dumps({**meta, "dtype": dtype}, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress is not None:
        progress(1, 1, f"{dtype} copy ready in {target}")
