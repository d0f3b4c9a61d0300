"""Minimal versioned workspace edits: only the changed lines, tied to the document version."""

from __future__ import annotations

import pytest
from lsprotocol import types

from lsp_server.refactor.edits import apply_text_edits, line_edits, workspace_edit
from lsp_server.refactor.text import split_lines

CASES = [
    ("a\nb\nc\n", "a\nB\nc\n", [(1, 2, "B\n")]),
    ("a\nb\nc\n", "a\nb\nx\nc\n", [(2, 2, "x\n")]),
    ("a\nb\nc\n", "a\nc\n", [(1, 2, "")]),
    (
        "def f():\n    return 1\n",
        'def f():\n    """Doc."""\n    return 1\n',
        [(1, 1, '    """Doc."""\n')],
    ),
    ("a\r\nb\r\n", "a\r\nc\r\n", [(1, 2, "c\r\n")]),
    ("a\nb", "a\nc", [(1, 1, "c")]),  # no final newline: the end is (1, len("b"))
    ("a\u00e9\nb", "a\u00e9\nc", [(1, 1, "c")]),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES)
def test_line_edits_are_minimal(old: str, new: str, expected: list[tuple[int, int, str]]) -> None:
    edits = line_edits(old, new)
    assert [(e.range.start.line, e.range.end.line, e.new_text) for e in edits] == expected
    assert all(e.range.start.character == 0 for e in edits)
    assert apply_text_edits(old, edits) == new


def test_end_of_document_position_uses_utf16() -> None:
    old = "x\n\U0001f600"
    edits = line_edits(old, "x\ny")
    assert edits[0].range.end == types.Position(line=1, character=2)
    assert apply_text_edits(old, edits) == "x\ny"


@pytest.mark.parametrize(
    ("last", "encoding", "column"),
    [
        ("\U0001f600", "utf-16", 2),
        ("\U0001f600", "utf-8", 4),
        ("\U0001f600", "utf-32", 1),
        ("a\u00e9", "utf-8", 3),
        ("a\ud800", "utf-16", 2),  # a lone surrogate is counted, not an encoding error
    ],
)
def test_end_of_document_column_follows_the_negotiated_encoding(
    last: str, encoding: str, column: int
) -> None:
    old = "x\n" + last
    edits = line_edits(old, "x\ny", encoding)
    assert edits[0].range.end == types.Position(line=1, character=column)
    assert apply_text_edits(old, edits, encoding) == "x\ny"


def test_workspace_edit_carries_version() -> None:
    edit = workspace_edit("file:///a.py", 7, "a\n", "b\n")
    assert edit is not None and edit.document_changes is not None
    change = edit.document_changes[0]
    assert isinstance(change, types.TextDocumentEdit)
    assert change.text_document == types.OptionalVersionedTextDocumentIdentifier(
        uri="file:///a.py", version=7
    )
    assert workspace_edit("file:///a.py", 7, "a\n", "a\n") is None


def test_workspace_edit_without_document_changes() -> None:
    edit = workspace_edit("file:///a.py", 7, "a\n", "b\n", document_changes=False)
    assert edit is not None and edit.changes is not None and edit.document_changes is None
    assert list(edit.changes) == ["file:///a.py"]


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("a\nb", ["a\n", "b"]),
        ("a\r\nb\rc\n", ["a\r\n", "b\r", "c\n"]),
        ("a\x0cb\u2028c\nd", ["a\x0cb\u2028c\n", "d"]),  # LSP does not break on these
        ("", []),
    ],
)
def test_split_lines_breaks_where_lsp_does(text: str, lines: list[str]) -> None:
    assert split_lines(text) == lines
