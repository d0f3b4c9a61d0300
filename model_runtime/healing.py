"""Token healing: back the prompt off to a stable token boundary before the cursor.

A prompt that ends in the middle of a word (``self.comman``), in whitespace (``x = ``, an
indented empty line) or after punctuation that usually merges with what follows (``print(``)
ends at a token boundary the model rarely saw in training: the natural tokenization of
``.command`` may be ``.command`` or ``.com`` + ``mand``, never ``.com`` + ``man`` + ``d``. The
model then "corrects" the boundary and repeats or drops characters (``.commanmand()``, or
nothing at all after ``:: ver``). Token healing (guidance; transformers'
``generate(token_healing=True)``) removes the last token(s) of the prompt and constrains the
first generated tokens to re-create the removed characters; after that generation is free.

This module is pure (no torch, no model):

- :func:`heal_table` -- the decoded vocabulary of a tokenizer, built once and cached per
  tokenizer: token texts sorted for a bisect ("tokens that start with ``r``") plus a dict from
  text to ids ("tokens that are a prefix of ``r``"). Special and control tokens (FIM sentinels,
  EOS, chat markers), empty tokens and tokens that decode to a partial UTF-8 character are not
  in it, so healing can never emit or remove one.
- :func:`plan_healing` -- how many characters of the cursor prefix to remove: the last tokens
  of the prefix's tail are dropped while some vocabulary token could cross their start and
  still agree with the removed text (at most ``max_tokens`` tokens / ``max_chars`` characters).
  It works on the *document* prefix only (the caller removes the characters before building
  the FIM prompt), so a header comment or a FIM sentinel is never touched -- guidance's issue
  #1132, where healing chopped a sentinel, cannot happen.
- :meth:`HealTable.candidates` -- the ids allowed at a constrained step: their text starts with
  the remaining removed text or is a non-empty proper prefix of it.
- :func:`advance` -- after a step: what remains to re-create, and the completion body once the
  removed text is complete (the user typed it already, so the body excludes it).
- :func:`grammar_starting_with` -- the same constraint for an engine outside this process: a
  llama.cpp grammar for outputs that start with the removed text.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

MAX_HEAL_TOKENS = 4
"""Most prompt tokens backed off (each is one constrained decode step)."""
MAX_HEAL_CHARS = 64
"""Most characters removed from the prefix."""
_TAIL_CHARS = 2 * MAX_HEAL_CHARS
"""Characters of the prefix's end tokenized to find its last tokens (longer than any token)."""


@dataclass
class HealTable:
    """The decoded vocabulary of one tokenizer, indexed for candidate look-ups."""

    texts: list[str]
    """Token texts, sorted (several ids may share a text)."""
    ids: list[int]
    """``ids[i]`` is the id whose text is ``texts[i]``."""
    first: dict[str, int]
    """Exact text → index of its first occurrence in ``texts``."""
    text_of: dict[int, str]
    """Id → text, for the ids in the table."""
    max_len: int
    """Length of the longest token text."""
    size: int = 0
    """``len(tokenizer)`` when built (a tokenizer that gained tokens is re-indexed)."""

    def span(self, remaining: str) -> tuple[int, int]:
        """``(lo, hi)``: ``texts[lo:hi]`` are exactly the texts that start with ``remaining``."""
        if not remaining:
            return 0, len(self.texts)
        lo = bisect.bisect_left(self.texts, remaining)
        last = remaining[-1]
        if ord(last) < 0x10FFFF:
            hi = bisect.bisect_left(self.texts, remaining[:-1] + chr(ord(last) + 1), lo)
        else:  # pragma: no cover - U+10FFFF never ends real source text
            hi = lo
            while hi < len(self.texts) and self.texts[hi].startswith(remaining):
                hi += 1
        return lo, hi

    def exact(self, text: str) -> list[int]:
        """Ids whose text is exactly ``text``."""
        index = self.first.get(text)
        if index is None:
            return []
        end = index + 1
        while end < len(self.texts) and self.texts[end] == text:
            end += 1
        return self.ids[index:end]

    def prefix_ids(self, remaining: str) -> list[int]:
        """Ids whose text is a non-empty proper prefix of ``remaining``."""
        out: list[int] = []
        for end in range(1, min(len(remaining), self.max_len + 1)):
            if remaining[:end] in self.first:
                out.extend(self.exact(remaining[:end]))
        return out

    def candidates(self, remaining: str) -> list[int]:
        """Ids allowed while ``remaining`` is still to be re-created (slow path: a list)."""
        lo, hi = self.span(remaining)
        return [*self.ids[lo:hi], *self.prefix_ids(remaining)]

    def can_cross(self, token: str, healed: str) -> bool:
        """Whether a vocabulary token longer than ``token`` agrees with ``healed``.

        ``healed`` starts with ``token`` (it is the text from this token's start to the
        cursor). Such a token would straddle ``token``'s end in the natural tokenization of
        the completed text, so the boundary after ``token`` is not a stable one.
        """
        lo, hi = self.span(healed)
        longer = hi - lo
        if healed == token:
            longer -= len(self.exact(token))
        if longer > 0:
            return True
        top = min(len(healed), self.max_len + 1)
        return any(healed[:end] in self.first for end in range(len(token) + 1, top))

    def extendable_inside(self, token: str) -> bool:
        """Whether some vocabulary token starts inside ``token`` and runs past its end.

        Then the natural tokenization of the completed text may split ``token`` differently
        (``=_`` + ``_version`` versus ``=`` + ``__version``).
        """
        for start in range(1, len(token)):
            piece = token[start:]
            lo, hi = self.span(piece)
            if hi - lo > len(self.exact(piece)):
                return True
        return False


def build_table(tokens: Iterable[tuple[int, str]], size: int = 0) -> HealTable:
    """A :class:`HealTable` from ``(id, text)`` pairs (texts already filtered)."""
    pairs = sorted((text, tid) for tid, text in tokens if text)
    texts = [text for text, _ in pairs]
    ids = [tid for _, tid in pairs]
    count = len(texts)
    return HealTable(
        texts=texts,
        ids=ids,
        # Built from the end so that the first occurrence of a repeated text wins.
        first=dict(zip(reversed(texts), range(count - 1, -1, -1), strict=True)),
        text_of=dict(zip(ids, texts, strict=True)),
        max_len=max(map(len, texts), default=0),
        size=size,
    )


def _special_ids(tokenizer: Any) -> set[int]:
    """Special / added-special token ids: never healed away, never generated while healing."""
    ids = {int(t) for t in getattr(tokenizer, "all_special_ids", []) or []}
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    ids.update(int(tid) for tid, added in decoder.items() if getattr(added, "special", False))
    return ids


def decode_vocabulary(tokenizer: Any) -> list[str]:
    """Text of every id as it reads in the middle of a text (SentencePiece keeps its space)."""
    size = len(tokenizer)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Decode each token behind a newline so SentencePiece does not strip a leading "▁".
        anchor = backend.encode("\n", add_special_tokens=False).ids[-1:]
        head = backend.decode(anchor, skip_special_tokens=False)
        texts = backend.decode_batch(
            [[*anchor, tid] for tid in range(size)], skip_special_tokens=False
        )
        return [t[len(head) :] if head and t.startswith(head) else t for t in texts]
    from model_runtime.fim import decode_infill_text

    return [decode_infill_text(tokenizer, [tid]) for tid in range(size)]


_TABLES: weakref.WeakKeyDictionary[Any, HealTable] = weakref.WeakKeyDictionary()
_TABLES_BY_ID: dict[int, HealTable] = {}


def heal_table(tokenizer: Any) -> HealTable:
    """The (cached) :class:`HealTable` of ``tokenizer``; ~0.1-0.7 s the first time."""
    size = len(tokenizer)
    try:
        cached = _TABLES.get(tokenizer)
    except TypeError:
        cached = _TABLES_BY_ID.get(id(tokenizer))
    if cached is not None and cached.size == size:
        return cached
    special = _special_ids(tokenizer)
    texts = decode_vocabulary(tokenizer)
    table = build_table(
        (
            (tid, text)
            for tid, text in enumerate(texts)
            if tid not in special and text and "\ufffd" not in text
        ),
        size=size,
    )
    try:
        _TABLES[tokenizer] = table
    except TypeError:
        _TABLES_BY_ID[id(tokenizer)] = table
    return table


def plan_from_tokens(
    table: HealTable,
    tail: str,
    tail_ids: list[int],
    *,
    whole: bool,
    encode: Callable[[str], list[int]] | None = None,
    max_tokens: int = MAX_HEAL_TOKENS,
    max_chars: int = MAX_HEAL_CHARS,
) -> str:
    """The end of ``tail`` to remove, given its token ids (the pure core of healing).

    Only the last ``max_tokens`` tokens (``max_chars`` characters) are candidates, and only
    while they are ordinary tokens of ``table`` (not a special token, not a partial UTF-8
    piece) whose texts spell the end of ``tail`` exactly, so that the removed text can always
    be re-created token by token. The cut goes before the furthest-back *unstable* one:

    - trailing whitespace-only tokens (pre-tokenizers split a run of spaces differently when
      a word follows: ``"   "`` + ``" if"``);
    - the last token, when it can be extended or re-split (:meth:`HealTable.can_cross`,
      :meth:`HealTable.extendable_inside`): ``man`` of ``.comman``, ``=_`` of ``=__version__``;
    - an earlier token when a vocabulary token could straddle its end and still agree with
      the text up to the cursor (``com`` + ``man``: ``command`` exists).

    With ``encode`` (text → ids, no implicit leading space), the kept text is re-encoded:
    when its own tokenization does not end with the same tokens as ``tail_ids`` (a kept text
    ending in spaces that merge with the newline before them), one more token is removed.

    The first token of a cut ``tail`` (``whole=False``) is never removed: it may be a piece.
    """
    first = 0 if whole else 1
    # The removable tail tokens, last first: each one's text and the text from it to the end.
    steps: list[tuple[str, str]] = []
    healed = ""
    for index in range(len(tail_ids) - 1, max(first, len(tail_ids) - max_tokens) - 1, -1):
        token = table.text_of.get(tail_ids[index])
        if token is None or len(token + healed) > max_chars:
            break
        healed = token + healed
        if not tail.endswith(healed):
            break
        steps.append((token, healed))
    # Cut before the furthest-back unstable token (trailing whitespace is always unstable).
    cut = 0  # number of tail tokens removed
    trailing = True
    for count, (token, text) in enumerate(steps, start=1):
        if trailing and not token.strip():
            cut = count
            continue
        last = trailing and count == 1
        trailing = False
        if table.can_cross(token, text) or (last and table.extendable_inside(token)):
            cut = count
    if encode is not None:
        # The kept text must end in the same tokens as in the tail's own tokenization.
        while 0 < cut < len(steps):
            keep = len(tail_ids) - cut
            own = encode(tail[: len(tail) - len(steps[cut - 1][1])])
            if own[-min(len(own), 2) :] == tail_ids[max(0, keep - 2) : keep]:
                break
            cut += 1
    return steps[cut - 1][1] if cut else ""


def plan_healing(
    tokenizer: Any,
    prefix: str,
    *,
    max_tokens: int = MAX_HEAL_TOKENS,
    max_chars: int = MAX_HEAL_CHARS,
) -> str:
    """Characters at the end of the cursor ``prefix`` to remove and re-generate ("" if none)."""
    if not prefix or max_tokens <= 0:
        return ""
    from model_runtime.fim import encode_infill_text

    table = heal_table(tokenizer)
    tail = prefix[-_TAIL_CHARS:]
    ids = encode_infill_text(tokenizer, tail)
    return plan_from_tokens(
        table,
        tail,
        ids,
        whole=len(tail) == len(prefix),
        encode=lambda text: encode_infill_text(tokenizer, text),
        max_tokens=max_tokens,
        max_chars=max_chars,
    )


def advance(healed: str, produced: str) -> tuple[str, str | None]:
    """``(remaining, body)`` after the constrained decode produced ``produced``.

    While ``produced`` is a proper prefix of ``healed``, ``body`` is ``None`` and ``remaining``
    is the rest to re-create. Once it starts with ``healed``, ``remaining`` is "" and ``body``
    the completion after the removed text. A decode that disagrees with ``healed`` (a decoder
    that merges text differently) ends healing with the part after the common prefix.
    """
    if produced.startswith(healed):
        return "", produced[len(healed) :]
    if healed.startswith(produced):
        return healed[len(produced) :], None
    common = 0
    for a, b in zip(healed, produced, strict=False):
        if a != b:
            break
        common += 1
    return "", produced[common:]


def grammar_starting_with(healed: str) -> str:
    """A GBNF grammar (llama.cpp's) that accepts any output starting with ``healed``.

    Token healing through an engine: the prompt ends before the removed characters and this
    grammar constrains the first generated tokens to re-create them (a token may run past
    them, ``.comman`` → ``command``); after them generation is free. Both llama.cpp servers
    take it as the ``grammar`` field of ``/v1/completions``.
    """
    escaped = "".join(
        "\\" + char if char in '"\\' else f"\\x{ord(char):02X}" if ord(char) < 0x20 else char
        for char in healed
    )
    return f'root ::= "{escaped}" [^\\x00]*'
