"""The minimal ``WorkspaceEdit`` between two versions of a document: only changed lines, tied to
the document version so that an editor refuses it once the document has moved on."""

from __future__ import annotations

import difflib

from lsprotocol import types

from lsp_server.refactor.text import split_lines
from lsp_server.text import units


def line_edits(old: str, new: str, encoding: str = "utf-16") -> list[types.TextEdit]:
    """Whole-line ``TextEdit``s turning ``old`` into ``new`` (difflib opcodes on lines).

    Positions are line starts except the end of a document without a final newline, whose
    column is counted in the negotiated position ``encoding`` (``utf-8``/``utf-16``/``utf-32``).
    """
    old_lines = split_lines(old)
    new_lines = split_lines(new)
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    edits = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        edits.append(
            types.TextEdit(
                range=types.Range(
                    _position(old_lines, i1, encoding), _position(old_lines, i2, encoding)
                ),
                new_text="".join(new_lines[j1:j2]),
            )
        )
    return edits


def _position(lines: list[str], index: int, encoding: str = "utf-16") -> types.Position:
    """Start of line ``index``; past the last line, the end of the document."""
    if index < len(lines):
        return types.Position(line=index, character=0)
    if not lines:
        return types.Position(line=0, character=0)
    last = lines[-1]
    if last.endswith(("\n", "\r")):
        return types.Position(line=len(lines), character=0)
    return types.Position(line=len(lines) - 1, character=units(last, encoding))


def workspace_edit(
    uri: str,
    version: int | None,
    old: str,
    new: str,
    *,
    document_changes: bool = True,
    encoding: str = "utf-16",
) -> types.WorkspaceEdit | None:
    """A versioned edit of ``uri`` from ``old`` to ``new``; None when nothing changed.

    ``document_changes=False`` is for clients without ``workspaceEdit.documentChanges``: the plain
    ``changes`` map carries no version, so the server must check staleness itself.
    """
    edits = line_edits(old, new, encoding)
    if not edits:
        return None
    if not document_changes:
        return types.WorkspaceEdit(changes={uri: edits})
    document = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
    return types.WorkspaceEdit(
        document_changes=[types.TextDocumentEdit(text_document=document, edits=list(edits))]
    )


def apply_text_edits(text: str, edits: list[types.TextEdit], encoding: str = "utf-16") -> str:
    """Apply ``edits`` (whole-line or end-of-document positions) to ``text``, as an editor would.

    Used by tests and benchmarks to check that an edit reproduces the validated document.
    """
    lines = split_lines(text)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def offset(position: types.Position) -> int:
        if position.line >= len(lines):
            return len(text)
        line = lines[position.line]
        count = 0
        for index, char in enumerate(line):
            if count >= position.character:
                return offsets[position.line] + index
            count += units(char, encoding)
        return offsets[position.line] + len(line)

    result = text
    for edit in sorted(
        edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
    ):
        start, end = offset(edit.range.start), offset(edit.range.end)
        result = result[:start] + edit.new_text + result[end:]
    return result
