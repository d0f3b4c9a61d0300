"""Text ↔ token ids the way SentencePiece and Meta's FIM code do, for any HF tokenizer.

:func:`encode` keeps SentencePiece's implicit leading space; :func:`encode_infill_text` and
:func:`decode_infill_text` (Meta's ``encode_infilling`` / ``decode_infilling``) drop and keep it
for the text around and inside a FIM hole. We get that without touching the caller's tokenizer
(transformers' ``CodeLlamaTokenizer`` mutates its normalizer during FIM encodes and is
therefore unsafe across threads): a private copy of the tokenizer's backend with the
prefix-space step switched off, cached per tokenizer. :func:`token_id` looks a single token up
in a cached vocabulary. The FIM templates (:mod:`model_runtime.fim`) are built on these.
"""

from __future__ import annotations

import contextlib
import json
import threading
import weakref
from typing import Any


class TemplateError(ValueError):
    """A template that does not fit the tokenizer (e.g. missing FIM tokens, or text it cannot
    encode without a leading space); :mod:`model_runtime.fim` re-exports it."""


def token_id(tokenizer: Any, token: str) -> int | None:
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
