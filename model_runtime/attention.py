"""The attention function the served model decodes with: SDPA, with a faster one-token path.

Why: transformers 5.23 runs a grouped-query model's decode step (one query token) through
``scaled_dot_product_attention(..., enable_gqa=True)``, and torch's CPU kernel for that is slow:
measured here for Qwen2.5-Coder-0.5B's shapes (14 query heads over 2 KV heads, head size 64,
bf16, 2 threads) 476 µs per layer at 512 cached tokens and 1,291 µs at 1,536 -- 31 ms of a
~130 ms decode step at a 1,536-token prompt. Folding the query heads that share a KV head into
the query-length axis (``[b, kv_heads, groups, d]``) turns the same attention into a plain
SDPA call without head expansion: 34 µs and 90 µs. The math is the same attention (the
single query attends to every cached key, so no causal mask is needed); the summation order
inside the kernel differs, as between any two SDPA kernels in bf16.

Prompt chunks (more than one query token) go to transformers' own SDPA function unchanged.
:func:`use_fast_decode_attention` switches a loaded model to this function (CPU models that
use SDPA); the name is registered with transformers' ``AttentionInterface`` once.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["ATTENTION_NAME", "use_fast_decode_attention"]

log = logging.getLogger(__name__)

ATTENTION_NAME = "codellama_sdpa"
"""The name the function is registered under (``model.config._attn_implementation``)."""

_registered = False


def _attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention signature: ``query`` ``[b, heads, q, d]``, ``key``/``value``
    ``[b, kv_heads, k, d]``; returns ``([b, q, heads, d], None)``."""
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    batch, heads, q_len, dim = query.shape
    plain_mask = attention_mask is None or (
        attention_mask.dim() == 4 and attention_mask.shape[1] == 1
    )
    if q_len != 1 or groups == 1 or not plain_mask or kwargs.get("softcap") is not None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    # Query head h uses KV head h // groups (transformers' repeat_kv order), so the heads of
    # one KV head are consecutive: fold them into the query axis of that KV head.
    packed = query.reshape(batch, heads // groups, groups, dim)
    out = F.scaled_dot_product_attention(
        packed, key, value, attn_mask=attention_mask, scale=scaling
    )
    return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


def _register() -> None:
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(ATTENTION_NAME, _attention)
        # The mask must be SDPA's too: for a name without a mask function transformers passes
        # no mask at all, and a prompt chunk after cached tokens would then be masked as if it
        # started the sequence (a wrong answer, not an error).
        AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
        _registered = True


def use_fast_decode_attention(model: Any, device: str) -> bool:
    """Switch ``model`` to :func:`_attention` when it runs SDPA on a CPU; True if switched.

    Other implementations (eager, flash, flex) and other devices are left as they are: the
    slow kernel is torch's CPU one, and GPUs have their own fast GQA kernels.
    """
    config = getattr(model, "config", None)
    if device != "cpu" or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    _register()
    try:
        model.set_attn_implementation(ATTENTION_NAME)
    except (ValueError, AttributeError) as exc:  # a model class that refuses custom functions
        log.debug("fast decode attention not used: %s", exc)
        return False
    return True
