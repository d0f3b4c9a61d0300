"""Load a model + tokenizer (+ optional PEFT adapter) and pick its FIM template.

torch, transformers and peft are imported inside functions: importing this module is cheap.

Adapter directories (written by ``training``) hold the PEFT files, ``codellama_adapter.json``
(``{"base_model": ..., "template": ...}``) and, when training added FIM tokens to a tokenizer
without them, that tokenizer: it is then used instead of the base one and the base model's
embeddings are resized to it before ``PeftModel.from_pretrained``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from model_runtime.fim import FimTemplate, TemplateError, detect_template, template_by_name
from model_runtime.spec import (
    ModelSpecError,
    ProgressFn,
    bundled_info,
    is_bundled,
    resolve_model,
)

log = logging.getLogger(__name__)

ADAPTER_META_FILE = "codellama_adapter.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
_DTYPES = ("float32", "float16", "bfloat16")
_DTYPE_ALIASES = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}


class ModelLoadError(RuntimeError):
    """The model or adapter could not be loaded; the message says what to do.

    ``fallback`` is set when a previous adapter had already been unloaded: the
    :class:`LoadedModel` serving the plain base model.
    """

    fallback: LoadedModel | None = None


@dataclass
class LoadedModel:
    """A ready-to-generate model: eval mode, on ``device``, with its tokenizer and template."""

    model: Any
    """The ``PreTrainedModel`` (a ``PeftModel`` when an adapter is loaded)."""
    tokenizer: Any
    """The tokenizer (the adapter's own when it ships one)."""
    template: FimTemplate
    """FIM template recorded by the adapter, else detected from the tokenizer."""
    model_id: str
    """The spec the user asked for (e.g. ``bundled:smollm2-135m``)."""
    adapter: str | None
    """Adapter directory, or ``None``."""
    device: str
    """``cpu``, ``cuda`` or ``cuda:N``."""
    dtype: str
    """``float32``, ``float16`` or ``bfloat16``."""
    dtype_reason: str = ""
    """Why this dtype (``dtype: auto``'s choice, shown in the log and ``codellama.status``)."""
    base_model: Any = None
    """The base model without adapter (same object as ``model`` when no adapter)."""
    base_tokenizer: Any = None
    """The base model's own tokenizer (restored when the adapter is removed)."""
    resolved_path: str = ""
    """What ``from_pretrained`` was called with (cache dir for the bundled model)."""
    trust_remote_code: bool = False
    """Passed to ``from_pretrained`` (also for an adapter's tokenizer)."""
    base_embedding_rows: int = 0
    """Embedding rows of the base checkpoint (restored when an adapter is removed)."""
    merged_originals: dict[str, Any] = field(default_factory=dict)
    """Base weights of the layers an adapter was merged into (name → exact copy), restored when
    the adapter is removed: merging and unmerging in bf16 would not give the weights back."""
    fim_order: str = "psm"
    """Prompt order for infilling: ``psm``, or ``spm`` for adapters whose FIM tokens were added
    in training (in SPM the prefix sits right before the middle, so a model that learned FIM
    only partly still continues the prefix instead of the suffix)."""
    quantize: str = "none"
    """Weight format of the served linear layers: ``none``, ``int8`` or ``int4``
    (:mod:`model_runtime.quant`)."""
    quantize_reason: str = ""
    """Why (``quantize: auto``'s choice), for the log and ``codellama.status``."""
    quant_swaps: list[Any] = field(default_factory=list)
    """The float layers the quantised ones replaced (restored to apply or remove an adapter)."""


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


def read_adapter_meta(adapter: str | Path) -> dict[str, Any]:
    """Read ``codellama_adapter.json`` from an adapter directory (``{}`` when absent)."""
    path = Path(adapter) / ADAPTER_META_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON ({exc}); re-run the fine-tune") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return data


def write_adapter_meta(
    adapter: str | Path, *, base_model: str, template: str, **extra: Any
) -> Path:
    """Write ``codellama_adapter.json`` (atomically) next to a saved adapter."""
    directory = Path(adapter)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ADAPTER_META_FILE
    payload = {"base_model": base_model, "template": template, **extra}
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".adapter-meta-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def adapter_has_tokenizer(adapter: str | Path) -> bool:
    """Whether the adapter directory ships its own tokenizer (FIM tokens added in training)."""
    return any((Path(adapter) / name).is_file() for name in _TOKENIZER_FILES)


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
    quant_choice = _choose_quantize(quantize, resolved_device, model)
    report(0, f"resolving model {model}")
    path = resolve_model(model, progress=progress if is_bundled(model) else None)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report(1, f"loading {model} ({resolved_device}, {choice.dtype})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        base = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=getattr(torch, choice.dtype),
            trust_remote_code=trust_remote_code,
            low_cpu_mem_usage=True,
        )
    except ModelSpecError:
        raise
    except (OSError, ValueError) as exc:
        raise _offline_hint(model, exc) from exc
    base.eval()
    base.to(resolved_device)  # type: ignore[arg-type]
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
        base_embedding_rows=_embedding_rows(base),
        quantize=quant_choice.mode,
        quantize_reason=quant_choice.reason,
    )
    if quant_choice.mode != "none":
        log.info("model %s: %s weights (%s)", model, quant_choice.mode, quant_choice.reason)
    if adapter is not None:
        report(2, f"loading adapter {adapter}")
        loaded = apply_adapter(loaded, adapter)  # quantises once the adapter is merged
    else:
        loaded = _quantize_served(loaded)
    report(3, f"model {model} ready")
    return loaded


def _unwrap_base(loaded: LoadedModel) -> Any:
    """The plain base model under a ``PeftModel``: merged weights restored exactly, adapter
    layers removed."""
    model = loaded.model
    if not (hasattr(model, "unload") and hasattr(model, "peft_config")):
        return model
    if loaded.merged_originals:
        named = dict(model.named_modules())
        for name, weight in loaded.merged_originals.items():
            layer = named[name]
            layer.get_base_layer().weight.data.copy_(weight)
            layer.merged_adapters = []
        loaded.merged_originals.clear()
    return model.unload()


def _merge_for_serving(model: Any) -> dict[str, Any]:
    """Merge the LoRA weights into the base layers so serving an adapter costs what the base
    model costs (no extra matmuls per layer); returns exact copies of the weights it changed.

    Only plain LoRA layers with a dense weight are merged; anything else (quantised base
    layers, other PEFT types) keeps running unmerged, which is correct, only slower.
    """
    originals: dict[str, Any] = {}
    layers = [
        (name, module)
        for name, module in model.named_modules()
        if hasattr(module, "merge")
        and hasattr(module, "get_base_layer")
        and hasattr(module, "lora_A")
    ]
    if not layers or any(
        not hasattr(module.get_base_layer(), "weight") or module.get_base_layer().weight is None
        for _, module in layers
    ):
        return originals
    for name, module in layers:
        originals[name] = module.get_base_layer().weight.detach().clone()
    try:
        for _, module in layers:
            module.merge(safe_merge=True)
    except (ValueError, RuntimeError) as exc:  # e.g. NaNs: serve unmerged instead
        log.warning("could not merge the adapter for serving (%s); serving it unmerged", exc)
        named = dict(model.named_modules())
        for name, weight in originals.items():
            named[name].get_base_layer().weight.data.copy_(weight)
            named[name].merged_adapters = []
        return {}
    return originals


def apply_adapter(loaded: LoadedModel, adapter: str | None) -> LoadedModel:
    """Return a new :class:`LoadedModel` serving ``adapter`` (``None`` → plain base model).

    The previous adapter (if any) is unloaded first; the base weights are never modified.
    """
    base_tokenizer = (
        loaded.base_tokenizer if loaded.base_tokenizer is not None else loaded.tokenizer
    )
    # Validate the new adapter before touching the served model.
    tokenizer = base_tokenizer
    meta: dict[str, Any] = {}
    directory = Path(adapter) if adapter is not None else None
    if directory is not None:
        if not (directory / "adapter_config.json").is_file():
            raise ModelLoadError(
                f"{directory} is not a PEFT adapter (no adapter_config.json); pass the directory "
                "written by `codellama-train` (or the codellama.finetune command)"
            )
        meta = read_adapter_meta(directory)
        if adapter_has_tokenizer(directory):
            from transformers import AutoTokenizer

            try:
                tokenizer = AutoTokenizer.from_pretrained(
                    str(directory), trust_remote_code=loaded.trust_remote_code
                )
            except (OSError, ValueError) as exc:
                raise ModelLoadError(
                    f"cannot load the tokenizer saved in {directory}: {exc}"
                ) from exc
        template_name = meta.get("template")
        try:
            template = (
                template_by_name(str(template_name), tokenizer)
                if template_name
                else detect_template(tokenizer)
            )
        except TemplateError as exc:
            raise ModelLoadError(f"adapter {directory}: {exc}") from exc

    _restore_float(loaded)  # peft wraps, merges and resizes only dense float layers
    base = loaded.base_model if loaded.base_model is not None else loaded.model
    if loaded.adapter is not None:
        base = _unwrap_base(loaded)
    rows = loaded.base_embedding_rows or _embedding_rows(base)
    plain = replace(
        loaded,
        model=base,
        base_model=base,
        tokenizer=base_tokenizer,
        template=detect_template(base_tokenizer),
        adapter=None,
        base_embedding_rows=rows,
        fim_order="psm",
        merged_originals={},
        quant_swaps=[],
    )
    if directory is None:
        _resize_embeddings(base, rows)
        return _quantize_served(plain)
    # Training grows the embeddings only when the tokenizer outgrew them (padded vocabularies
    # such as Qwen's already have spare rows); mirror that here.
    _resize_embeddings(base, max(rows, len(tokenizer)))

    from peft import PeftModel

    try:
        model = PeftModel.from_pretrained(base, str(directory), is_trainable=False)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        _resize_embeddings(base, rows)
        error = ModelLoadError(
            f"adapter {directory} does not fit model {loaded.model_id}: {exc}. "
            f"It was trained for {meta.get('base_model', 'an unknown base model')}."
        )
        error.fallback = _quantize_served(plain)
        raise error from exc
    model.to(loaded.device)
    model.eval()
    originals = _merge_for_serving(model)
    served = replace(
        loaded,
        quant_swaps=[],
        merged_originals=originals,
        model=model,
        base_model=base,
        tokenizer=tokenizer,
        template=template,
        adapter=str(directory),
        fim_order="spm" if meta.get("fim_order") == "spm" else "psm",
    )
    return _quantize_served(served)


def _embedding_rows(model: Any) -> int:
    return int(model.get_input_embeddings().weight.shape[0])


def _resize_embeddings(model: Any, size: int) -> None:
    """Grow/shrink the input (and tied output) embeddings to ``size`` rows if they differ."""
    if _embedding_rows(model) != size:
        model.resize_token_embeddings(size, mean_resizing=False)


def _choose_quantize(quantize: str, device: str, model: str) -> Any:
    """:func:`model_runtime.quant.choose_quantize`, its error as a :class:`ModelLoadError`."""
    from model_runtime.quant import QuantizeError, choose_quantize

    try:
        return choose_quantize(quantize, device, model)
    except QuantizeError as exc:
        raise ModelLoadError(str(exc)) from exc


def _restore_float(loaded: LoadedModel) -> None:
    """Put the float layers back under the served model (no-op when it is not quantised)."""
    if loaded.quant_swaps:
        from model_runtime.quant import restore_linears

        restore_linears(loaded.quant_swaps)


def _quantize_served(loaded: LoadedModel) -> LoadedModel:
    """``loaded`` with its served model's linear layers quantised to ``loaded.quantize``
    (after an adapter was merged: the merged weights are quantised, see
    :mod:`model_runtime.quant`)."""
    if loaded.quantize == "none" or loaded.quant_swaps:
        return loaded
    from model_runtime.quant import quantize_linears

    return replace(loaded, quant_swaps=quantize_linears(loaded.model, loaded.quantize))
