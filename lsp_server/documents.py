"""The server's copy of the client's documents: pygls' workspace with LSP-exact document sync.

pygls 2.1.1 splits documents with ``str.splitlines()`` — also at ``\\x0b \\x0c \\x1c-\\x1e \\x85
\\u2028 \\u2029`` — while LSP lines end only at ``\\n``, ``\\r\\n`` and ``\\r``: after an incremental
edit on such a document its copy diverges from the editor's. It also rebuilds the tuple of all
lines on every change and position lookup (O(document) Python work per keystroke). Here:

- an incremental change becomes two offsets (:func:`lsp_server.text.clamped_offset`, C-speed
  over the text before the position) and one splice; positions outside the document are
  clamped as editors clamp them; a change whose end precedes its start is rejected, and then the
  whole ``didChange`` is (the document keeps its previous text and version, with a log line);
- ``lines`` breaks where LSP does, so pygls helpers that still use it agree with the editor;
- a non-string ``languageId`` is stored as ``None``;
- ``didChange``/``didClose`` for a document that is not open is logged, not an exception;
- ``get_text_document`` never reads a file from disk for a URI the client did not open (it
  returns an empty, unsaved document).

``position_encoding`` is the negotiated encoding as a plain string (``"utf-8"``, ``"utf-16"``
or ``"utf-32"``), so ``str()`` of it is usable (``str()`` of the lsprotocol enum is not).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.workspace import TextDocument, Workspace

from lsp_server.text import clamped_offset, encoding_name, split_lines

__all__ = ["LspTextDocument", "LspWorkspace", "apply_changes"]

logger = logging.getLogger(__name__)


class InvalidChange(ValueError):
    """A content change the server cannot apply (the message says why)."""


def apply_changes(text: str, changes: Sequence[Any], encoding: str) -> str:
    """``text`` after ``changes`` (``didChange`` content changes, in order).

    Raises :class:`InvalidChange` (nothing applied) for a range whose end precedes its start.
    """
    for change in changes:
        change_range = getattr(change, "range", None)
        if change_range is None:
            text = change.text
            continue
        first, last = change_range.start, change_range.end
        if (last.line, last.character) < (first.line, first.character):  # before clamping
            raise InvalidChange(
                f"range end {change_range.end.line}:{change_range.end.character} precedes its "
                f"start {change_range.start.line}:{change_range.start.character}"
            )
        start = clamped_offset(text, first.line, first.character, encoding)
        end = clamped_offset(text, last.line, last.character, encoding)
        text = text[:start] + change.text + text[end:]
    return text


class LspTextDocument(TextDocument):
    """A pygls ``TextDocument`` whose lines and edits follow LSP's line breaks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.language_id, str):
            self.language_id = None

    @property
    def encoding(self) -> str:
        """The negotiated position encoding (``"utf-8"``, ``"utf-16"`` or ``"utf-32"``)."""
        return encoding_name(self.position_codec.encoding)

    @property
    def lines(self) -> Sequence[str]:
        return tuple(split_lines(self.source))

    @property
    def source(self) -> str:
        # pygls reads the file from disk when a document has no text; ours always have text.
        return self._source or ""

    def apply_change(self, change: types.TextDocumentContentChangeEvent) -> None:
        if self._is_sync_kind_none:
            return
        self._source = apply_changes(self.source, [change], self.encoding)


class LspWorkspace(Workspace):
    """A pygls ``Workspace`` holding :class:`LspTextDocument`s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._position_encoding = encoding_name(self._position_encoding)

    def _create_text_document(
        self,
        doc_uri: str,
        source: str | None = None,
        version: int | None = None,
        language_id: str | None = None,
    ) -> TextDocument:
        return LspTextDocument(
            doc_uri,
            source=source if source is not None else "",
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self._position_codec,
        )

    def update_text_document(
        self,
        text_doc: types.VersionedTextDocumentIdentifier,
        change: types.TextDocumentContentChangeEvent,
    ) -> None:
        self.apply_did_change(text_doc, [change])

    def apply_did_change(
        self,
        text_doc: types.VersionedTextDocumentIdentifier,
        changes: Sequence[types.TextDocumentContentChangeEvent],
    ) -> bool:
        """Apply one ``didChange`` atomically; False (logged) when it cannot be applied."""
        document = self._text_documents.get(unquote(text_doc.uri))
        if document is None:
            logger.warning("didChange for %s ignored: the document is not open", text_doc.uri)
            return False
        if self._sync_kind == types.TextDocumentSyncKind.None_:
            return True
        try:
            text = apply_changes(document.source, changes, encoding_name(self._position_encoding))
        except InvalidChange as exc:
            logger.warning(
                "didChange for %s (version %s) ignored: %s", text_doc.uri, text_doc.version, exc
            )
            return False
        document._source = text
        document.version = text_doc.version
        return True

    def remove_text_document(self, doc_uri: str) -> None:
        if unquote(doc_uri) not in self._text_documents:
            logger.warning("didClose for %s ignored: the document is not open", doc_uri)
        super().remove_text_document(doc_uri)
