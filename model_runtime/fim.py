"""Fill-in-the-middle prompt formats per model family, detected from the tokenizer.

Families: ``codellama`` (Meta's token-exact PSM/SPM construction, stop on ``<EOT>``),
``starcoder`` (also SmolLM: ``<fim_prefix>``...), ``qwen`` (``<|fim_prefix|>``...), ``deepseek``
(``<｜fim▁begin｜>``...) and ``none`` (plain left-to-right from the prefix).

CodeLlama (paper §2.3, Meta's ``llama/generation.py``)::

    PSM: [BOS, PRE] + enc(prefix) + [SUF] + enc_infill(suffix) + [MID]
    SPM: [BOS, PRE, SUF] + enc_infill(suffix) + [MID] + enc(prefix)

where ``enc_infill`` drops SentencePiece's implicit leading space. We get that without touching
the caller's tokenizer (transformers' ``CodeLlamaTokenizer`` mutates its normalizer during FIM
encodes and is therefore unsafe across threads): a private copy of the tokenizer's backend with
the prefix-space step switched off. Every id comes from the tokenizer; none is hard-coded.
"""

from __future__ import annotations

import contextlib
import json
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

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


class TemplateError(ValueError):
    """A template that does not fit the tokenizer (e.g. missing FIM tokens)."""


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


def _token_id(tokenizer: Any, token: str) -> int | None:
    """Id of ``token`` if it is a single entry of the vocabulary (never the unk id)."""
    vocab = _vocab(tokenizer)
    if token in vocab:
        return int(vocab[token])
    return None


_VOCAB_CACHE: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()


def _vocab(tokenizer: Any) -> dict[str, int]:
    try:
        cached = _VOCAB_CACHE.get(tokenizer)
    except TypeError:
        cached = None
    if cached is None or len(cached) != len(tokenizer):
        cached = dict(tokenizer.get_vocab())
        with contextlib.suppress(TypeError):
            _VOCAB_CACHE[tokenizer] = cached
    return cached


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
        if all(_token_id(tokenizer, t) is not None for t in _FAMILY_TOKENS[name]):
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
            tid = _token_id(tokenizer, token)
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
        tid = _token_id(tokenizer, token)
        if tid is not None:
            stops.add(tid)
    end_id = next(
        (tid for tid in (_token_id(tokenizer, t) for t in _END_TOKENS[name]) if tid is not None),
        eos,
    )
    if end_id is not None:
        stops.add(end_id)
    stops |= _control_ids(tokenizer)
    if name == "none":
        bos = tokenizer.bos_token_id if _adds_bos(tokenizer) else None
        return FimTemplate(name="none", end_id=end_id, bos_id=bos, stop_ids=frozenset(stops))
    ids = [_token_id(tokenizer, t) for t in _FAMILY_TOKENS[name]]
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


def encode(tokenizer: Any, text: str) -> list[int]:
    """Encode without special tokens, as SentencePiece does (with its implicit leading space).

    For SentencePiece-style tokenizers, HF's ``Metaspace`` skips the prefix when the text already
    starts with a space, whereas SentencePiece always adds it (``" x"`` → ``▁▁x``). We therefore
    encode ``" " + text`` with the prefix-free copy, which matches SentencePiece exactly.
    """
    if not text:
        return []
    info = _backend_info(tokenizer)
    if info is not None:
        clone, implicit = info
        if implicit:
            return list(clone.encode(" " + text, add_special_tokens=False).ids)
        # The backend directly: ~50x less overhead than PreTrainedTokenizer.encode per call.
        return list(tokenizer.backend_tokenizer.encode(text, add_special_tokens=False).ids)
    return list(tokenizer.encode(text, add_special_tokens=False))


# A private copy of each tokenizer's backend with the implicit leading space switched off.
_NO_PREFIX: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_NO_PREFIX_LOCK = threading.Lock()


def _strip_prefix_space(node: Any) -> Any:
    """Rewrite a tokenizers JSON (sub)tree so nothing prepends a space/▁ to the input."""
    if isinstance(node, list):
        return [_strip_prefix_space(n) for n in node if not _is_prepend(n)]
    if not isinstance(node, dict):
        return node
    out = {k: _strip_prefix_space(v) for k, v in node.items()}
    kind = out.get("type")
    if kind == "Metaspace":
        out["prepend_scheme"] = "never"
        out["add_prefix_space"] = False
    elif kind == "ByteLevel" and "add_prefix_space" in out:
        out["add_prefix_space"] = False
    return out


def _is_prepend(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "Prepend"


def _walk_implicit_space(node: Any) -> bool:
    if isinstance(node, list):
        return any(_walk_implicit_space(n) for n in node)
    if not isinstance(node, dict):
        return False
    kind = node.get("type")
    if kind == "Prepend":
        return True
    if kind == "Metaspace":
        return node.get("prepend_scheme", "always") != "never" and bool(
            node.get("add_prefix_space", True)
        )
    if kind == "ByteLevel":
        return bool(node.get("add_prefix_space", False))
    return any(_walk_implicit_space(v) for v in node.values())


def _component_json(component: Any) -> Any:
    """JSON of one backend component (normalizer / pre-tokenizer) without dumping the vocab."""
    if component is None:
        return None
    state = component.__getstate__()
    return json.loads(state.decode("utf-8") if isinstance(state, bytes) else state)


def _backend_info(tokenizer: Any) -> tuple[Any, bool] | None:
    """``(prefix-free backend copy or None, backend adds an implicit leading space)``, cached.

    The copy (a full serialization round trip, ~1 s for a 32k vocabulary) is only made for
    tokenizers that do add an implicit space (SentencePiece-style, e.g. CodeLlama).
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    with _NO_PREFIX_LOCK:
        try:
            cached = _NO_PREFIX.get(tokenizer)
        except TypeError:
            cached = None
        if cached is not None and cached[0] == len(tokenizer):
            return cached[1], cached[2]
        implicit = _walk_implicit_space(
            _component_json(backend.normalizer)
        ) or _walk_implicit_space(_component_json(backend.pre_tokenizer))
        clone = None
        if implicit:
            from tokenizers import Tokenizer

            data = json.loads(backend.to_str())
            for key in ("normalizer", "pre_tokenizer"):
                node = data.get(key)
                if _is_prepend(node):
                    data[key] = None
                elif node is not None:
                    data[key] = _strip_prefix_space(node)
            data["post_processor"] = None
            clone = Tokenizer.from_str(json.dumps(data))
        with contextlib.suppress(TypeError):
            _NO_PREFIX[tokenizer] = (len(tokenizer), clone, implicit)
        return clone, implicit


def encode_infill_text(tokenizer: Any, text: str) -> list[int]:
    """Encode ``text`` without SentencePiece's implicit leading space (Meta's ``encode_infilling``)."""
    if not text:
        return []
    info = _backend_info(tokenizer)
    if info is not None:
        clone, implicit = info
        backend = clone if implicit else tokenizer.backend_tokenizer
        return list(backend.encode(text, add_special_tokens=False).ids)
    # Slow tokenizer: encode behind a newline and drop the newline's tokens.
    anchor = encode(tokenizer, "\n")
    ids = encode(tokenizer, "\n" + text)
    if ids[: len(anchor)] != anchor:
        raise TemplateError("cannot encode text without a leading space with this tokenizer")
    return ids[len(anchor) :]


_ANCHORS: weakref.WeakKeyDictionary[Any, tuple[list[int], str]] = weakref.WeakKeyDictionary()


def _anchor(tokenizer: Any) -> tuple[list[int], str]:
    """Ids and text of a newline, decoded in front of a middle so no leading space is lost."""
    try:
        cached = _ANCHORS.get(tokenizer)
    except TypeError:
        cached = None
    if cached is None:
        ids = encode_infill_text(tokenizer, "\n")
        cached = (ids, tokenizer.decode(ids, skip_special_tokens=False))
        with contextlib.suppress(TypeError):
            _ANCHORS[tokenizer] = cached
    return cached


def decode_infill_text(tokenizer: Any, ids: list[int]) -> str:
    """Decode ``ids`` keeping a leading space (Meta's ``decode_infilling``)."""
    if not ids:
        return ""
    anchor, head = _anchor(tokenizer)
    text = tokenizer.decode(anchor + list(ids), skip_special_tokens=False)
    if head and text.startswith(head):
        return str(text[len(head) :])
    return str(tokenizer.decode(list(ids), skip_special_tokens=False))
