"""Fill-in-the-middle prompt formats per model family, detected from the tokenizer.

Families: ``codellama`` (Meta's token-exact PSM/SPM construction, stop on ``<EOT>``),
``starcoder`` (also SmolLM: ``<fim_prefix>``...), ``qwen`` (``<|fim_prefix|>``...), ``deepseek``
(``<｜fim▁begin｜>``...) and ``none`` (plain left-to-right from the prefix).

CodeLlama (paper §2.3, Meta's ``llama/generation.py``)::

    PSM: [BOS, PRE] + enc(prefix) + [SUF] + enc_infill(suffix) + [MID]
    SPM: [BOS, PRE, SUF] + enc_infill(suffix) + [MID] + enc(prefix)

where ``enc_infill`` drops SentencePiece's implicit leading space (:mod:`model_runtime.encoding`,
whose ``encode`` / ``encode_infill_text`` / ``decode_infill_text`` this module re-exports).
Every id comes from the tokenizer; none is hard-coded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model_runtime.encoding import (
    TemplateError,
    decode_infill_text,
    encode,
    encode_infill_text,
    token_id,
)

__all__ = [
    "STARCODER_FIM_TOKENS",
    "TEMPLATE_NAMES",
    "FimTemplate",
    "TemplateError",
    "decode_infill_text",
    "detect_template",
    "encode",
    "encode_infill_text",
    "template_by_name",
    "token_id",
]

TEMPLATE_NAMES = ("codellama", "starcoder", "qwen", "deepseek", "none")

STARCODER_FIM_TOKENS: tuple[str, ...] = (
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    "<|endoftext|>",
)
"""Tokens training adds to a tokenizer without FIM tokens (the last one ends the middle)."""

# family → (prefix, suffix, middle) token strings; the end token is resolved separately.
_FAMILY_TOKENS: dict[str, tuple[str, str, str]] = {
    "codellama": ("▁<PRE>", "▁<SUF>", "▁<MID>"),
    "deepseek": ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),
    "qwen": ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
    "starcoder": ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
}
# Candidate end-of-middle tokens, first present wins (the tokenizer's EOS is the fallback).
_END_TOKENS: dict[str, tuple[str, ...]] = {
    "codellama": ("▁<EOT>",),
    "deepseek": ("<｜end▁of▁sentence｜>",),
    "qwen": ("<|endoftext|>",),
    "starcoder": ("<|endoftext|>",),
    "none": (),
}
# Extra tokens that also end a completion (file/repo separators, chat ends, padding).
_EXTRA_STOPS: tuple[str, ...] = (
    "<|endoftext|>",
    "<file_sep>",
    "<|file_sep|>",
    "<|repo_name|>",
    "<reponame>",
    "<filename>",
    "<|fim_pad|>",
    "<fim_pad>",
    "<|EOT|>",
    "<｜end▁of▁sentence｜>",
    "<|im_end|>",
)


@dataclass(frozen=True)
class FimTemplate:
    """One family's FIM format with the token ids resolved against a tokenizer."""

    name: str
    prefix_id: int | None = None
    suffix_id: int | None = None
    middle_id: int | None = None
    end_id: int | None = None
    """Token that ends the middle (``<EOT>`` for CodeLlama, ``<|endoftext|>`` for StarCoder)."""
    bos_id: int | None = None
    """BOS put in front of prompts (``None`` when the tokenizer does not use one)."""
    stop_ids: frozenset[int] = field(default_factory=frozenset)
    """Generation stops at any of these ids."""

    @property
    def supports_fim(self) -> bool:
        """False for ``none``: prompts are the prefix only."""
        return self.name != "none"

    @property
    def fim_tokens(self) -> tuple[str, ...]:
        """Token strings to add to a tokenizer for FIM training (empty if it has its own)."""
        return () if self.supports_fim else STARCODER_FIM_TOKENS

    def _head(self) -> list[int]:
        return [self.bos_id] if self.bos_id is not None else []

    def encode_infill(
        self, tokenizer: Any, prefix: str, suffix: str, *, spm: bool = False
    ) -> list[int]:
        """Prompt ids for inference: PSM by default, SPM with ``spm=True``.

        ``none`` ignores ``suffix`` (left-to-right from the prefix).
        """
        if not self.supports_fim:
            return self._head() + encode(tokenizer, prefix)
        pre, suf, mid = self._fim_ids()
        if spm:
            return [
                *self._head(),
                pre,
                suf,
                *encode_infill_text(tokenizer, suffix),
                mid,
                *encode(tokenizer, prefix),
            ]
        return [
            *self._head(),
            pre,
            *encode(tokenizer, prefix),
            suf,
            *encode_infill_text(tokenizer, suffix),
            mid,
        ]

    def encode_training(
        self, tokenizer: Any, prefix: str, middle: str, suffix: str, *, spm: bool = False
    ) -> list[int]:
        """Full training sequence: the infill prompt + ``middle`` + the end token.

        The middle is encoded without an implicit leading space, exactly as the model emits it
        after the middle token at inference time. Raises :class:`TemplateError` for ``none``
        (add :attr:`fim_tokens` to the tokenizer and re-detect first).
        """
        if not self.supports_fim or self.end_id is None:
            raise TemplateError(
                f"template '{self.name}' has no FIM tokens; add template.fim_tokens to the "
                "tokenizer (and resize the model's embeddings), then call detect_template again"
            )
        return (
            self.encode_infill(tokenizer, prefix, suffix, spm=spm)
            + encode_infill_text(tokenizer, middle)
            + [self.end_id]
        )

    def decode_middle(self, tokenizer: Any, ids: list[int]) -> str:
        """Decode generated ids without dropping a leading space (SentencePiece strips it)."""
        return decode_infill_text(tokenizer, ids)

    def _fim_ids(self) -> tuple[int, int, int]:
        if self.prefix_id is None or self.suffix_id is None or self.middle_id is None:
            raise TemplateError(f"template '{self.name}' is missing FIM token ids")
        return self.prefix_id, self.suffix_id, self.middle_id


def _adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer's own ``encode`` puts BOS first (our prompts then do too)."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer.encode("x", add_special_tokens=True)
    return bool(ids) and ids[0] == bos


def detect_template(tokenizer: Any) -> FimTemplate:
    """Pick the family from the tokenizer's vocabulary / special tokens."""
    for name in ("codellama", "deepseek", "qwen", "starcoder"):
        if all(token_id(tokenizer, t) is not None for t in _FAMILY_TOKENS[name]):
            return template_by_name(name, tokenizer)
    return template_by_name("none", tokenizer)


def _control_ids(tokenizer: Any) -> set[int]:
    """Ids of special / FIM control tokens: a middle never contains one, so each ends it.

    Without this a weak model that emits ``<fim_prefix>`` or ``<|im_start|>`` would have the
    token's text shown to the user as part of the completion.
    """
    ids = {int(t) for t in getattr(tokenizer, "all_special_ids", []) or []}
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids.update(int(tid) for tid, added in decoder.items() if getattr(added, "special", False))
    for tokens in _FAMILY_TOKENS.values():
        for token in tokens:
            tid = token_id(tokenizer, token)
            if tid is not None:
                ids.add(tid)
    return ids


def template_by_name(name: str, tokenizer: Any) -> FimTemplate:
    """Build the named template with ids from ``tokenizer`` (clear error if tokens missing)."""
    if name not in TEMPLATE_NAMES:
        raise TemplateError(
            f"unknown FIM template '{name}'; choose one of {', '.join(TEMPLATE_NAMES)}"
        )
    eos = tokenizer.eos_token_id
    stops = {eos} if eos is not None else set()
    for token in _EXTRA_STOPS:
        tid = token_id(tokenizer, token)
        if tid is not None:
            stops.add(tid)
    end_id = next(
        (tid for tid in (token_id(tokenizer, t) for t in _END_TOKENS[name]) if tid is not None),
        eos,
    )
    if end_id is not None:
        stops.add(end_id)
    stops |= _control_ids(tokenizer)
    if name == "none":
        bos = tokenizer.bos_token_id if _adds_bos(tokenizer) else None
        return FimTemplate(name="none", end_id=end_id, bos_id=bos, stop_ids=frozenset(stops))
    ids = [token_id(tokenizer, t) for t in _FAMILY_TOKENS[name]]
    missing = [t for t, i in zip(_FAMILY_TOKENS[name], ids, strict=True) if i is None]
    if missing:
        raise TemplateError(f"tokenizer has no {', '.join(missing)} tokens for template '{name}'")
    if name == "codellama":
        bos = tokenizer.bos_token_id  # Meta's construction always starts with BOS
    else:
        bos = tokenizer.bos_token_id if _adds_bos(tokenizer) else None
    pre, suf, mid = ids
    assert pre is not None and suf is not None and mid is not None
    return FimTemplate(
        name=name,
        prefix_id=pre,
        suffix_id=suf,
        middle_id=mid,
        end_id=end_id,
        bos_id=bos,
        stop_ids=frozenset(stops),
    )
