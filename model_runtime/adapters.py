"""PEFT adapters at serving time: their directory files, and swapping the one a model serves.

An adapter directory (written by ``training``) holds the PEFT files, ``codellama_adapter.json``
(``{"base_model": ..., "template": ..., "fim_order": ...}``) and, when training added FIM tokens
to a tokenizer without them, that tokenizer: it is then used instead of the base one and the
base model's embeddings are resized to it before ``PeftModel.from_pretrained``.

Serving an adapter merges its LoRA weights into the base layers (no extra matmuls per layer);
exact copies of the changed base weights are kept and copied back when the adapter is swapped
out, since unmerging in bf16 would not restore them. Quantised serving layers are put back to
float first and quantised again after the merge. ``model_runtime.loader`` re-exports these
names. transformers and peft are imported inside functions.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from model_runtime.fim import FimTemplate, TemplateError, detect_template, template_by_name
from model_runtime.loaded import (
    LoadedModel,
    ModelLoadError,
    embedding_rows,
    quantize_served,
    resize_embeddings,
    restore_float,
)

log = logging.getLogger(__name__)

ADAPTER_META_FILE = "codellama_adapter.json"
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


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


def _read_adapter(
    directory: Path, base_tokenizer: Any, trust_remote_code: bool
) -> tuple[Any, FimTemplate, dict[str, Any]]:
    """Check an adapter directory before the served model is touched; returns the tokenizer
    to serve it with (its own, or the base one), its FIM template and its metadata."""
    if not (directory / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"{directory} is not a PEFT adapter (no adapter_config.json); pass the directory "
            "written by `codellama-train` (or the codellama.finetune command)"
        )
    meta = read_adapter_meta(directory)
    tokenizer = base_tokenizer
    if adapter_has_tokenizer(directory):
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(
                str(directory), trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot load the tokenizer saved in {directory}: {exc}") from exc
    template_name = meta.get("template")
    try:
        template = (
            template_by_name(str(template_name), tokenizer)
            if template_name
            else detect_template(tokenizer)
        )
    except TemplateError as exc:
        raise ModelLoadError(f"adapter {directory}: {exc}") from exc
    return tokenizer, template, meta


def _plain_base(loaded: LoadedModel, base_tokenizer: Any) -> LoadedModel:
    """``loaded`` without its adapter: float layers back, merged weights restored, the PEFT
    wrapper removed (embeddings not resized yet; ``base_embedding_rows`` says to what)."""
    restore_float(loaded)  # peft wraps, merges and resizes only dense float layers
    base = loaded.base_model if loaded.base_model is not None else loaded.model
    if loaded.adapter is not None:
        base = _unwrap_base(loaded)
    return replace(
        loaded,
        model=base,
        base_model=base,
        tokenizer=base_tokenizer,
        template=detect_template(base_tokenizer),
        adapter=None,
        base_embedding_rows=loaded.base_embedding_rows or embedding_rows(base),
        fim_order="psm",
        merged_originals={},
        quant_swaps=[],
    )


def apply_adapter(loaded: LoadedModel, adapter: str | None) -> LoadedModel:
    """Return a new :class:`LoadedModel` serving ``adapter`` (``None`` → plain base model).

    The previous adapter (if any) is unloaded first; the base weights are never modified.
    A bad directory raises before anything is touched; an adapter that does not fit raises a
    :class:`ModelLoadError` whose ``fallback`` serves the plain base model.
    """
    base_tokenizer = (
        loaded.base_tokenizer if loaded.base_tokenizer is not None else loaded.tokenizer
    )
    directory = Path(adapter) if adapter is not None else None
    if directory is not None:  # validate the new adapter before touching the served model
        tokenizer, template, meta = _read_adapter(
            directory, base_tokenizer, loaded.trust_remote_code
        )
    plain = _plain_base(loaded, base_tokenizer)
    base, rows = plain.model, plain.base_embedding_rows
    if directory is None:
        resize_embeddings(base, rows)
        return quantize_served(plain)
    # Training grows the embeddings only when the tokenizer outgrew them (padded vocabularies
    # such as Qwen's already have spare rows); mirror that here.
    resize_embeddings(base, max(rows, len(tokenizer)))

    from peft import PeftModel

    try:
        model = PeftModel.from_pretrained(base, str(directory), is_trainable=False)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        resize_embeddings(base, rows)
        error = ModelLoadError(
            f"adapter {directory} does not fit model {loaded.model_id}: {exc}. "
            f"It was trained for {meta.get('base_model', 'an unknown base model')}."
        )
        error.fallback = quantize_served(plain)
        raise error from exc
    model.to(loaded.device)
    model.eval()
    served = replace(
        plain,
        merged_originals=_merge_for_serving(model),
        model=model,
        tokenizer=tokenizer,
        template=template,
        adapter=str(directory),
        fim_order="spm" if meta.get("fim_order") == "spm" else "psm",
    )
    return quantize_served(served)
