"""Completions: ``textDocument/inlineCompletion`` (ghost text) and ``textDocument/completion``.

Both handlers parse params, look the cursor up strictly (unknown documents and positions outside
the document answer empty, with a log line), then ask the one shared
:class:`~lsp_server.completion_service.CompletionService`. An identical concurrent request from
the other handler (VS Code sends both on a keystroke) joins the same model run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from lsprotocol import types
from pygls.uris import to_fs_path

from lsp_server.completion_service import CompletionOutcome
from lsp_server.feature import Feature, lsp
from lsp_server.text import offset_at, units

if TYPE_CHECKING:
    from lsp_server.completion_service import CompletionService
    from lsp_server.server import CodeLlamaServer

__all__ = ["CompletionFeature", "completion_items"]

_WORD_END = re.compile(r"\w*$")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Cursor:
    uri: str
    text: str
    offset: int
    path: str
    language: str | None


class CompletionFeature(Feature):
    """Inline and list completions from the shared completion service."""

    name = "completion"

    def __init__(self, server: CodeLlamaServer, completions: CompletionService) -> None:
        super().__init__(server)
        self.completions = completions

    @lsp(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    async def inline_completion(
        self, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        outcome = await self._complete(params.text_document.uri, params.position)
        if not outcome.text:
            return types.InlineCompletionList(items=[])
        here = types.Range(start=params.position, end=params.position)
        return types.InlineCompletionList(
            items=[types.InlineCompletionItem(insert_text=outcome.text, range=here)]
        )

    @lsp(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(resolve_provider=False))
    async def completion(self, params: types.CompletionParams) -> types.CompletionList:
        cursor = self._cursor(params.text_document.uri, params.position)
        outcome = await self._complete_at(cursor)
        line_start = cursor.text.rfind("\n", 0, cursor.offset) + 1 if cursor else 0
        line_prefix = cursor.text[line_start : cursor.offset] if cursor else ""
        items = completion_items(outcome.text, line_prefix, params.position, self._encoding())
        # Incomplete: the client asks again as the user types (the typed-through cache answers).
        return types.CompletionList(is_incomplete=True, items=items)

    def document_opened(self, params: types.DidOpenTextDocumentParams) -> None:
        # Be ready before the user asks: prefill the model's cache for this file (background).
        cursor = self._cursor(params.text_document.uri, types.Position(line=0, character=0))
        if cursor is not None:
            self.completions.prefetcher.document_opened(
                cursor.uri, cursor.text, cursor.path, cursor.language, self.server.settings
            )

    def document_changed(self, params: types.DidChangeTextDocumentParams) -> None:
        # The running generation is for text that no longer exists: stop it now rather than
        # when the next request arrives (clients don't always send one).
        self.completions.cancel(params.text_document.uri)
        # An edit in another top-level block (the cursor moved there): prefill for it.
        changes = params.content_changes
        last = changes[-1] if changes else None
        if isinstance(last, types.TextDocumentContentChangePartial):
            cursor = self._cursor(params.text_document.uri, last.range.start)
            if cursor is not None:
                self.completions.prefetcher.cursor_moved(
                    cursor.uri,
                    cursor.text,
                    min(len(cursor.text), cursor.offset + len(last.text)),
                    cursor.path,
                    cursor.language,
                    self.server.settings,
                )

    def document_closed(self, params: types.DidCloseTextDocumentParams) -> None:
        self.completions.cancel(params.text_document.uri)
        self.completions.cache.forget(params.text_document.uri)
        self.completions.prefetcher.forget(params.text_document.uri)

    async def _complete(self, uri: str, position: types.Position) -> CompletionOutcome:
        return await self._complete_at(self._cursor(uri, position))

    async def _complete_at(self, cursor: _Cursor | None) -> CompletionOutcome:
        if cursor is None:
            return CompletionOutcome("", "error")
        self.completions.prefetcher.cursor_moved(  # the request warms this block itself
            cursor.uri,
            cursor.text,
            cursor.offset,
            cursor.path,
            cursor.language,
            self.server.settings,
            prefetch=False,
        )
        outcome = await self.completions.complete(
            uri=cursor.uri,
            text=cursor.text,
            offset=cursor.offset,
            path=cursor.path,
            language=cursor.language,
            settings=self.server.settings,
        )
        if outcome.error and outcome.source in {"error", "binary"}:
            logger.warning("no completion for %s: %s", cursor.uri, outcome.error)
        logger.debug(
            "completion %s: %s %d chars in %.1f ms",
            cursor.uri,
            outcome.source,
            len(outcome.text),
            outcome.elapsed_s * 1000,
        )
        return outcome

    def _encoding(self) -> str:
        return self.server.position_encoding

    def _cursor(self, uri: str, position: types.Position) -> _Cursor | None:
        document = self.server.workspace.text_documents.get(unquote(uri))
        if document is None:
            logger.warning("completion for %s ignored: the document is not open", uri)
            return None
        text = document.source
        offset = offset_at(text, position.line, position.character, self._encoding())
        if offset is None:
            logger.warning(
                "completion for %s ignored: position %d:%d is outside the document",
                uri,
                position.line,
                position.character,
            )
            return None
        return _Cursor(uri, text, offset, self._path(uri), document.language_id)

    def _path(self, uri: str) -> str:
        path = to_fs_path(uri) or uri
        root = self.server.workspace_root
        if root is not None:
            try:
                return Path(path).relative_to(root).as_posix()
            except ValueError:
                pass
        return path


def completion_items(
    text: str, line_prefix: str, position: types.Position, encoding: str = "utf-16"
) -> list[types.CompletionItem]:
    """One item: label = first line, insert = whole text, replacing the word being typed.

    The edit starts at the word before the cursor so clients that filter items by that word
    (VS Code, nvim-cmp) keep showing the completion.
    """
    if not text:
        return []
    word = _WORD_END.search(line_prefix).group(0)  # type: ignore[union-attr]
    width = units(word, encoding)  # in the negotiated encoding (UTF-8 bytes for Neovim)
    start = types.Position(line=position.line, character=max(0, position.character - width))
    first_line = (word + text).split("\n", 1)[0].strip() or text.strip().split("\n", 1)[0]
    return [
        types.CompletionItem(
            label=first_line[:80] or "…",
            kind=types.CompletionItemKind.Text,
            detail="codellama",
            filter_text=word + text.split("\n", 1)[0],
            text_edit=types.TextEdit(
                range=types.Range(start=start, end=position), new_text=word + text
            ),
            insert_text_format=types.InsertTextFormat.PlainText,
            sort_text="0",
        )
    ]
