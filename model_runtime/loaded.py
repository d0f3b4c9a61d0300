"""The loaded model: :class:`LoadedModel`, :class:`ModelLoadError`, and what changes the
weights it serves (quantised linear layers, embedding rows).

Shared by :mod:`model_runtime.loader` (which builds a :class:`LoadedModel`) and
:mod:`model_runtime.adapters` (which swaps the adapter it serves); both re-export from here,
``model_runtime.loader`` stays the name other code imports. torch is imported inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from model_runtime.fim import FimTemplate


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


def embedding_rows(model: Any) -> int:
    """Rows of ``model``'s input embedding matrix."""
    return int(model.get_input_embeddings().weight.shape[0])


def resize_embeddings(model: Any, size: int) -> None:
    """Grow/shrink the input (and tied output) embeddings to ``size`` rows if they differ."""
    if embedding_rows(model) != size:
        model.resize_token_embeddings(size, mean_resizing=False)


def choose_quantize(quantize: str, device: str, model: str, dtype: str = "bfloat16") -> Any:
    """:func:`model_runtime.quant.choose_quantize`, its error as a :class:`ModelLoadError`."""
    from model_runtime.quant import QuantizeError
    from model_runtime.quant import choose_quantize as choose

    try:
        return choose(quantize, device, model, dtype)
    except QuantizeError as exc:
        raise ModelLoadError(str(exc)) from exc


def restore_float(loaded: LoadedModel) -> None:
    """Put the float layers back under the served model (no-op when it is not quantised)."""
    if loaded.quant_swaps:
        from model_runtime.quant import restore_linears

        restore_linears(loaded.quant_swaps)


def quantize_served(loaded: LoadedModel) -> LoadedModel:
    """``loaded`` with its served model's linear layers quantised to ``loaded.quantize``
    (after an adapter was merged: the merged weights are quantised, see
    :mod:`model_runtime.quant`)."""
    if loaded.quantize == "none" or loaded.quant_swaps:
        return loaded
    from model_runtime.quant import quantize_linears

    return replace(loaded, quant_swaps=quantize_linears(loaded.model, loaded.quantize))
