"""Causal-LM loss without the full ``[batch, seq, vocab]`` logits tensor.

A causal LM's forward computes ``lm_head(hidden)`` for every position, then the loss upcasts
those logits to fp32: for Qwen2.5-Coder's 151,936-token vocabulary at batch 4 × 512 that is
1.2 GB per copy, and autograd keeps several copies (logits, fp32 logits, softmax grad).  Here
the model runs with ``logits_to_keep=1`` (one position of logits, next to nothing) and
``output_hidden_states=True``; the loss is then computed from the final hidden states (after
the last norm: transformers ties ``hidden_states[-1]`` to ``last_hidden_state``) **only at
label positions**, in chunks of positions, each chunk's ``lm_head`` + cross-entropy inside
:func:`torch.utils.checkpoint.checkpoint` so backward recomputes one chunk's logits at a time.
Peak memory for the head is one chunk's logits (a few tens of MB) instead of several
full-size copies.

The value is the one transformers' ``ForCausalLMLoss`` gives (sum of fp32 cross-entropy over
shifted labels ÷ ``num_items_in_batch``).  The model is still called through whatever wraps it
(PEFT, DDP from ``accelerator.prepare``), so gradient synchronisation and adapters work as
before; only ``lm_head`` is called directly, on the unwrapped model's own (possibly
PEFT-wrapped) output-embedding module.
"""

from __future__ import annotations

import inspect
from typing import Any

IGNORE_INDEX = -100
CHUNK_LOGIT_BYTES = 64 * 2**20
"""fp32 logits per chunk (≈ 110 positions for a 152k vocabulary, ≈ 340 for 49k)."""


def base_causal_lm(model: Any) -> Any:
    """The transformers ``*ForCausalLM`` inside DDP/FSDP (``.module``) and PEFT wrappers."""
    seen = 0
    while seen < 8:
        seen += 1
        if hasattr(model, "get_base_model"):  # PeftModel → the (LoRA-injected) base model
            model = model.get_base_model()
        elif hasattr(model, "module") and not hasattr(model, "get_output_embeddings"):
            model = model.module  # DistributedDataParallel / FSDP
        else:
            break
    return model


def supports_chunked_loss(model: Any) -> bool:
    """True when the model's forward takes ``logits_to_keep`` and its logits are plain
    ``lm_head(hidden)`` (no final soft-capping or logit scaling applied after the head)."""
    base = base_causal_lm(model)
    try:
        params = inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False
    if "logits_to_keep" not in params or base.get_output_embeddings() is None:
        return False
    config = getattr(base, "config", None)
    text_config = getattr(config, "get_text_config", lambda: config)()
    for attr in ("final_logit_softcapping", "logit_scale", "output_multiplier_scale"):
        if getattr(text_config, attr, None) not in (None, 1, 1.0):
            return False
    return True


def auto_chunk_tokens(vocab_size: int, budget_bytes: int = CHUNK_LOGIT_BYTES) -> int:
    """Positions per chunk so that one chunk's fp32 logits take about ``budget_bytes``."""
    return max(16, budget_bytes // (4 * max(1, vocab_size)))


def chunked_lm_loss(
    hidden: Any, labels: Any, lm_head: Any, num_items: Any, chunk_tokens: int
) -> Any:
    """``sum(CE(lm_head(hidden[:, :-1]), labels[:, 1:])) / num_items`` over label positions,
    ``chunk_tokens`` positions at a time, each chunk recomputed in backward."""
    import torch
    import torch.nn.functional as F
    from torch.utils.checkpoint import checkpoint

    h = hidden[:, :-1].reshape(-1, hidden.shape[-1])
    y = labels[:, 1:].reshape(-1).to(h.device)
    keep = y != IGNORE_INDEX
    h, y = h[keep], y[keep]

    def chunk_loss(hc: Any, yc: Any) -> Any:
        logits = lm_head(hc).float()
        return F.cross_entropy(logits, yc, ignore_index=IGNORE_INDEX, reduction="sum")

    total = hidden.new_zeros((), dtype=torch.float32)
    step = max(1, int(chunk_tokens))
    for i in range(0, h.shape[0], step):
        hc, yc = h[i : i + step], y[i : i + step]
        if torch.is_grad_enabled() and hc.requires_grad:
            total = total + checkpoint(chunk_loss, hc, yc, use_reentrant=False)
        else:
            total = total + chunk_loss(hc, yc)
    if h.shape[0] == 0:  # keep the graph connected so backward() works on an all-ignored batch
        total = total + hidden.sum() * 0.0
    if isinstance(num_items, torch.Tensor):
        num_items = num_items.to(total.device)
    return total / num_items


def causal_lm_loss(
    model: Any, batch: dict[str, Any], *, num_items: Any, chunk_tokens: int | None
) -> Any:
    """Forward ``batch`` (``input_ids``, ``labels``, ``position_ids`` …) and return the loss.

    ``chunk_tokens``: positions per chunk (``None``: :func:`auto_chunk_tokens` for the
    vocabulary; ``0``: the plain full-logits loss of the model itself).
    """
    if chunk_tokens == 0:
        out = model(**batch, use_cache=False, num_items_in_batch=num_items)
        return out.loss
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    out = model(**inputs, use_cache=False, output_hidden_states=True, logits_to_keep=1)
    hidden = out.hidden_states[-1]
    lm_head = base_causal_lm(model).get_output_embeddings()
    if chunk_tokens is None:
        chunk_tokens = auto_chunk_tokens(int(out.logits.shape[-1]))
    return chunked_lm_loss(hidden, batch["labels"], lm_head, num_items, chunk_tokens)
