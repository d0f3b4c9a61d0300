"""How the engine picks tokens besides plain greedy: healing constraints and prompt-lookup drafts.

- :class:`HealedPicker`: while token healing re-creates the characters removed from the end of
  the prefix, the greedy choice is made among the tokens consistent with what remains (each
  one's text is a prefix of it, or starts with it; see :mod:`model_runtime.healing`).
- :func:`draft_tokens`: prompt-lookup decoding's draft, the tokens that followed the most
  recent earlier occurrence of the context's last n-gram (verified by the engine in one pass,
  so the output stays exactly greedy).
"""

from __future__ import annotations

from typing import Any

from model_runtime.healing import heal_table, plan_healing

__all__ = ["HealedPicker", "draft_tokens", "heal_text"]


class HealedPicker:
    """Greedy token choice, constrained while healing; caches the vocabulary ids per device.

    The heal table's ids (sorted by text) live on the device once per (table, device); the ids
    starting with the remaining text are a contiguous slice of them (a bisect), the few proper
    prefixes of it are dict look-ups: well under a millisecond even for a 151k vocabulary.
    """

    def __init__(self) -> None:
        self._ids: dict[tuple[int, int, str], tuple[Any, Any]] = {}

    def clear(self) -> None:
        """Forget the cached id tensors (the served tokenizer may have changed)."""
        self._ids.clear()

    def __len__(self) -> int:
        return len(self._ids)

    def candidates(self, tokenizer: Any, device: Any, remaining: str) -> Any:
        """Tensor of token ids whose text starts with ``remaining`` or is a prefix of it
        (``None``: no such token)."""
        import torch

        table = heal_table(tokenizer)
        key = (id(table), table.size, str(device))
        cached = self._ids.get(key)
        if cached is None or cached[0] is not table:
            ids = torch.tensor(table.ids, dtype=torch.long, device=device)
            cached = self._ids[key] = (table, ids)
        lo, hi = table.span(remaining)
        starts = cached[1][lo:hi]
        prefixes = table.prefix_ids(remaining)
        if not prefixes:
            return starts if hi > lo else None
        extra = torch.tensor(prefixes, dtype=torch.long, device=device)
        return torch.cat([starts, extra]) if hi > lo else extra

    def pick(self, logits: Any, tokenizer: Any, device: Any, heal: str) -> int:
        """Greedy choice; while healing (``heal`` non-empty), among the consistent tokens."""
        if heal:
            allowed = self.candidates(tokenizer, device, heal)
            if allowed is not None:
                return int(allowed[int(logits.index_select(0, allowed).argmax())])
        return int(logits.argmax())


def draft_tokens(context: list[int], size: int, max_ngram: int = 3) -> list[int]:
    """Up to ``size`` tokens that followed the most recent earlier occurrence of the context's
    last n-gram (the longest n ≤ ``max_ngram`` that occurred before), else ``[]``."""
    if size <= 0:
        return []
    for n in range(max_ngram, 0, -1):
        if len(context) <= n:
            continue
        tail = context[-n:]
        for start in range(len(context) - n - 1, -1, -1):
            if context[start : start + n] == tail:
                follow = context[start + n : start + n + size]
                if follow:
                    return follow
    return []


def heal_text(loaded: Any, prefix: str) -> str:
    """The end of the cursor ``prefix`` to remove from the prompt and re-generate.

    "" when nothing needs it. Only the document prefix is looked at (the header and FIM
    sentinels are added after), see :func:`model_runtime.healing.plan_healing`. ``loaded``: a
    :class:`~model_runtime.loaded.LoadedModel` (its tokenizer and template).
    """
    if not prefix:
        return ""
    heal = plan_healing(loaded.tokenizer, prefix)
    template = loaded.template
    if heal == prefix and not template.supports_fim and template.bos_id is None:
        return ""  # a plain left-to-right prompt would be empty
    return heal
