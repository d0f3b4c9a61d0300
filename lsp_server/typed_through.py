"""Typed-through cache: serve the rest of a shown completion while the user types it.

When a completion ``"return a + b"`` is on screen and the user types ``"ret"``, the model need
not run again: the answer is ``"urn a + b"``. This module is pure (no LSP, no torch): it remembers
the last few completions per document with a window of text around the cursor, and answers in
microseconds whether a new cursor context is the old one plus a typed part of the completion.

Speculative entries (``speculative=True``) hold a completion computed in the background for the
document as it will be once the user accepts the shown suggestion (suggestion inserted, cursor
after it): accepting with Tab then finds the next suggestion here, without a model run.

Only a window of the document is compared (``WINDOW`` characters either side of the cursor):
the prompt never sees more than a few thousand characters anyway, and comparing whole 10 MB
documents on every keystroke would cost more than it saves.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["WINDOW", "CachedCompletion", "TypedThroughCache"]

WINDOW = 8192
"""Characters of prefix tail / suffix head that must match for a cache hit."""


@dataclass(frozen=True)
class CachedCompletion:
    """A completion as shown: the cursor context it was computed for and its text."""

    offset: int
    """Cursor offset in the document (so an edit above the window still changes the key)."""
    prefix_tail: str
    """The last ``WINDOW`` characters before the cursor."""
    suffix_len: int
    """Characters after the cursor."""
    suffix_head: str
    """The first ``WINDOW`` characters after the cursor."""
    text: str
    """The completion text that was returned for this context."""
    speculative: bool = False
    """Computed ahead of time for the document after accepting a suggestion (not yet shown)."""

    @classmethod
    def of(
        cls, document: str, offset: int, text: str, *, speculative: bool = False
    ) -> CachedCompletion:
        """Remember ``text`` as the completion at ``offset`` of ``document``."""
        tail = document[max(0, offset - WINDOW) : offset]
        head = document[offset : offset + WINDOW]
        return cls(offset, tail, len(document) - offset, head, text, speculative)

    def remainder(self, document: str, offset: int) -> str | None:
        """The untyped rest of the completion at the new cursor, or ``None`` if it diverged.

        Matches when the text before the new cursor is the cached prefix followed by a (possibly
        empty) typed start of the completion and the text after the cursor is unchanged. An
        empty remainder (everything typed) is a miss: the user wants what comes next.
        """
        typed_len = offset - self.offset
        if typed_len < 0 or typed_len >= len(self.text):
            return None
        if len(document) - offset != self.suffix_len:
            return None
        if not document.startswith(self.suffix_head, offset):
            return None
        if not self.text.startswith(document[self.offset : offset]):
            return None
        if not document.startswith(self.prefix_tail, self.offset - len(self.prefix_tail)):
            return None
        return self.text[typed_len:]


class TypedThroughCache:
    """The last few completions per document (most recent first), bounded in documents too."""

    def __init__(self, per_document: int = 4, documents: int = 64) -> None:
        self._per_document = per_document
        self._documents = documents
        self._entries: OrderedDict[str, list[CachedCompletion]] = OrderedDict()

    def put(
        self, uri: str, document: str, offset: int, text: str, *, speculative: bool = False
    ) -> None:
        """Remember a non-empty completion shown for ``uri`` at ``offset`` of ``document``
        (``speculative``: computed ahead for a context the user has not reached yet)."""
        if not text:
            return
        entries = self._entries.pop(uri, [])
        entries.insert(0, CachedCompletion.of(document, offset, text, speculative=speculative))
        del entries[self._per_document :]
        self._entries[uri] = entries
        while len(self._entries) > self._documents:
            self._entries.popitem(last=False)

    def get(self, uri: str, document: str, offset: int) -> str | None:
        """The remainder of a cached completion the user is typing through, or ``None``."""
        found = self.find(uri, document, offset)
        return found[0] if found is not None else None

    def find(self, uri: str, document: str, offset: int) -> tuple[str, CachedCompletion] | None:
        """Like :meth:`get`, also returning the matching entry (to tell speculative hits)."""
        for entry in self._entries.get(uri, ()):
            rest = entry.remainder(document, offset)
            if rest is not None:
                return rest, entry
        return None

    def forget(self, uri: str) -> None:
        """Drop everything cached for ``uri`` (document closed)."""
        self._entries.pop(uri, None)

    def clear(self) -> None:
        """Drop everything (the model or adapter changed, so old answers are stale)."""
        self._entries.clear()
