"""The KV cache an engine keeps between requests, and the prompt token ids it holds.

Prefix reuse: the next request's prompt shares its first tokens with the cached ones, so the
cache is cropped to the longest common prefix and only the new tail is prefilled
(:meth:`PrefixCache.reuse_length`, :meth:`PrefixCache.crop`). A forward pass interrupted by a
cancel may have appended keys/values to some layers already: :meth:`PrefixCache.trim` cuts
every layer back to the tokens of the last complete pass. Not thread-safe (the engine's thread).
"""

from __future__ import annotations

from typing import Any

__all__ = ["PrefixCache"]


class PrefixCache:
    """A ``transformers`` ``DynamicCache`` (or ``None``) and the token ids it holds."""

    def __init__(self) -> None:
        self.cache: Any = None
        self.ids: list[int] = []

    def reset(self) -> None:
        """Forget everything (the tensors are freed with the cache object)."""
        self.cache = None
        self.ids = []

    def renew(self, config: Any) -> None:
        """Start an empty cache for a model with ``config``."""
        from transformers import DynamicCache

        self.cache = DynamicCache(config=config)
        self.ids = []

    def reuse_length(self, ids: list[int]) -> int:
        """Longest common prefix with the cached ids (at least one token is always recomputed,
        since the logits of the last prompt token are needed)."""
        if self.cache is None or not self.ids:
            return 0
        if any(getattr(layer, "is_sliding", False) for layer in getattr(self.cache, "layers", [])):
            return 0  # a sliding-window cache cannot be cropped back
        common = 0
        limit = min(len(ids) - 1, len(self.ids))
        cached = self.ids
        while common < limit and cached[common] == ids[common]:
            common += 1
        return common

    def crop(self, keep: int) -> None:
        """Keep the first ``keep`` tokens."""
        remove = len(self.ids) - keep
        if remove > 0:
            self.cache.crop(-remove)
            del self.ids[keep:]

    def trim(self) -> None:
        """Crop every cache layer back to the tokens of the last complete forward pass."""
        if self.cache is None:
            return
        keep = len(self.ids)
        for layer in getattr(self.cache, "layers", []):
            extra = layer.get_seq_length() - keep
            if extra > 0:
                layer.crop(-extra)

    def forward(self, model: Any, device: Any, tokens: list[int], keep_logits: int) -> Any:
        """Run ``tokens`` through ``model`` on top of the cache; the last ``keep_logits``
        positions' logits (the cache then holds ``tokens`` too)."""
        import torch

        out = model(
            input_ids=torch.tensor([tokens], dtype=torch.long, device=device),
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=keep_logits,
        )
        self.ids.extend(tokens)
        return out.logits[0]
