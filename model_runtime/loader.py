"""Load a model + tokenizer (+ optional PEFT adapter) and pick its device, dtype and template.

torch, transformers and peft are imported inside functions: importing this module is cheap.

:func:`choose_dtype` is the one dtype resolver (server, training and evaluation go through
it; :func:`torch_dtype` gives its ``torch.dtype``). Adapter directories and swapping the served
adapter are :mod:`model_runtime.adapters`; the :class:`LoadedModel` type and the served-weights
helpers are :mod:`model_runtime.loaded`; this module re-exports their public names, so
``model_runtime.loader`` stays the one import for callers.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_runtime.adapters import (
    ADAPTER_META_FILE,
    adapter_has_tokenizer,
    apply_adapter,
    read_adapter_meta,
    write_adapter_meta,
)
from model_runtime.attention import use_fast_decode_attention
from model_runtime.fim import detect_template
from model_runtime.loaded import (
    LoadedModel,
    ModelLoadError,
    choose_quantize,
    embedding_rows,
    quantize_served,
)
from model_runtime.spec import (
    ModelSpecError,
    ProgressFn,
    bundled_info,
    is_bundled,
    resolve_model,
)

__all__ = [
    "ADAPTER_META_FILE",
    "DtypeChoice",
    "LoadedModel",
    "ModelLoadError",
    "adapter_has_tokenizer",
    "apply_adapter",
    "choose_dtype",
    "cpu_has_native_bf16",
    "load_model",
    "read_adapter_meta",
    "resolve_device",
    "resolve_dtype",
    "torch_dtype",
    "write_adapter_meta",
]

log = logging.getLogger(__name__)

_DTYPES = ("float32", "float16", "bfloat16")
_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}


def resolve_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when available else ``cpu``; other values are validated."""
    import torch

    device = (device or "auto").strip().lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"device '{device}' requested but CUDA is not available; use 'cpu' or 'auto'"
            )
        return device
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise ModelLoadError("device 'mps' requested but not available; use 'cpu' or 'auto'")
        return device
    raise ModelLoadError(f"unknown device '{device}'; use auto, cpu, cuda, cuda:N or mps")


@dataclass(frozen=True)
class DtypeChoice:
    """The weight dtype ``dtype: auto`` (or an explicit value) resolves to, and why."""

    dtype: str
    """``float32``, ``float16`` or ``bfloat16``."""
    reason: str
    """One line for the log and ``codellama.status`` (e.g. "auto: CPU has native bf16 ...")."""


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (x86 AVX512-BF16 or AMX-BF16; Arm BF16).

    Without it, torch emulates bf16 matmuls and they are slower than fp32.
    """
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def _normalise_dtype(dtype: str | None) -> str:
    name = (dtype or "auto").strip().lower()
    name = _DTYPE_ALIASES.get(name, name)
    if name != "auto" and name not in _DTYPES:
        raise ModelLoadError(
            f"unknown dtype '{dtype}'; use auto, float32 (fp32), float16 (fp16) or bfloat16 (bf16)"
        )
    return name


def choose_dtype(dtype: str | None, device: str, model: str = "") -> DtypeChoice:
    """Resolve ``dtype`` for ``model`` on ``device``.

    ``auto``: bf16 on CUDA when supported, else fp16; fp16 on MPS; on a CPU bf16 only when the
    CPU has native bf16 *and* bf16 keeps the model's greedy output -- a recorded property of the
    bundled models (Qwen2.5-Coder: same 32 tokens as fp32 and 3.5x faster prefill here;
    SmolLM2: diverges at token 2); fp32 otherwise. Aliases: fp32, fp16, half, bf16.
    """
    name = _normalise_dtype(dtype)
    if name != "auto":
        return DtypeChoice(name, f"{name} (set explicitly)")
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_bf16_supported():
            return DtypeChoice("bfloat16", "auto: CUDA with bf16 support")
        return DtypeChoice("float16", "auto: CUDA without bf16 support")
    if device == "mps":
        return DtypeChoice("float16", "auto: Apple MPS")
    if not cpu_has_native_bf16():
        return DtypeChoice("float32", "auto: this CPU has no native bf16")
    bundled = bundled_info(model) if model else None
    if bundled is not None:
        if bundled.bf16_greedy:
            return DtypeChoice(
                "bfloat16", f"auto: native bf16 CPU; {bundled.spec} keeps greedy output in bf16"
            )
        return DtypeChoice(
            "float32", f"auto: {bundled.spec} changes its greedy output in bf16, so fp32"
        )
    # No record for this model: fp32. (A one-prompt greedy probe was tried: it passed tiny
    # random models whose other prompts then diverged in bf16, so it is not trusted.)
    return DtypeChoice(
        "float32", "auto: no bf16 record for this model, so fp32 (set dtype to bfloat16 to try)"
    )


def resolve_dtype(dtype: str, device: str, model: str = "") -> str:
    """The dtype :func:`choose_dtype` picks."""
    return choose_dtype(dtype, device, model).dtype


def torch_dtype(dtype: str, device: str, model: str = "") -> Any:
    """The ``torch.dtype`` :func:`choose_dtype` picks (what ``from_pretrained`` takes)."""
    return _torch(resolve_dtype(dtype, device, model))


def _torch(name: str) -> Any:
    """``float32`` → ``torch.float32`` (a name :func:`choose_dtype` returned)."""
    import torch

    return getattr(torch, name)


def _offline_hint(model: str, exc: Exception) -> ModelLoadError:
    text = str(exc)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    if offline or "offline" in text.lower() or "couldn't connect" in text.lower():
        return ModelLoadError(
            f"cannot load '{model}': it is not in the local Hugging Face cache and the hub is "
            "unreachable (HF_HUB_OFFLINE or no network). Download it once with network access "
            "(huggingface-cli download " + model + "), pass a local model directory, or use "
            "'bundled:smollm2-135m'."
        )
    return ModelLoadError(f"cannot load '{model}': {text.splitlines()[0] if text else exc!r}")


def load_model(
    model: str,
    *,
    adapter: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    progress: ProgressFn | None = None,
    quantize: str = "none",
) -> LoadedModel:
    """Load ``model`` (spec, hub id or dir) and optionally a PEFT ``adapter`` directory.

    If the adapter directory holds tokenizer files (training added FIM tokens), that tokenizer
    is used and the base embeddings are resized to it before ``PeftModel.from_pretrained``.
    Raises :class:`ModelLoadError` / :class:`~model_runtime.spec.ModelSpecError` with a
    message saying what to do. ``quantize``: ``none``, ``int8``, ``int4`` or ``auto`` (see
    :func:`model_runtime.quant.choose_quantize`); weight-only, CPU only.
    """

    def report(done: int, message: str) -> None:
        if progress is not None:
            progress(done, 3, message)

    if adapter is not None and not Path(adapter).is_dir():
        raise ModelLoadError(f"adapter directory {adapter} does not exist")
    resolved_device = resolve_device(device)
    choice = choose_dtype(dtype, resolved_device, model)
    quant_choice = choose_quantize(quantize, resolved_device, model, choice.dtype)
    report(0, f"resolving model {model}")
    path = resolve_model(
        model, progress=progress if is_bundled(model) else None, dtype=choice.dtype
    )

    from transformers import AutoModelForCausalLM, AutoTokenizer

    report(1, f"loading {model} ({resolved_device}, {choice.dtype})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        base = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=_torch(choice.dtype),
            trust_remote_code=trust_remote_code,
            low_cpu_mem_usage=True,
        )
    except ModelSpecError:
        raise
    except (OSError, ValueError) as exc:
        raise _offline_hint(model, exc) from exc
    base.eval()
    base.to(resolved_device)  # type: ignore[arg-type]
    use_fast_decode_attention(base, resolved_device)
    log.info("model %s: %s on %s (%s)", model, choice.dtype, resolved_device, choice.reason)
    loaded = LoadedModel(
        model=base,
        tokenizer=tokenizer,
        template=detect_template(tokenizer),
        model_id=model,
        adapter=None,
        device=resolved_device,
        dtype=choice.dtype,
        dtype_reason=choice.reason,
        base_model=base,
        base_tokenizer=tokenizer,
        resolved_path=path,
        trust_remote_code=trust_remote_code,
        base_embedding_rows=embedding_rows(base),
        quantize=quant_choice.mode,
        quantize_reason=quant_choice.reason,
    )
    if quant_choice.mode != "none":
        log.info("model %s: %s weights (%s)", model, quant_choice.mode, quant_choice.reason)
    if adapter is not None:
        report(2, f"loading adapter {adapter}")
        loaded = apply_adapter(loaded, adapter)  # quantises once the adapter is merged
    else:
        loaded = quantize_served(loaded)
    report(3, f"model {model} ready")
    return loaded
