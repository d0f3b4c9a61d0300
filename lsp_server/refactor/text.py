"""Line handling shared by the refactor core: LSP line breaks and indentation.

Lines split where LSP splits them by ``lsp_server.text.split_lines`` (re-exported here); columns
in the negotiated position encoding come from ``lsp_server.text.units``.
"""

from __future__ import annotations

import re

from lsp_server.text import split_lines

__all__ = [
    "common_indent", "dedent_lines", "indent_text", "leading_ws", "line_ending",
    "normalise_endings", "split_lines", "strip_ending",
]  # fmt: skip

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def line_ending(text: str) -> str:
    """The document's first line ending (``\\n`` when it has none)."""
    match = _LINE_BREAK.search(text)
    return match.group(0) if match else "\n"


def strip_ending(line: str) -> str:
    """``line`` without its line break."""
    return line.rstrip("\r\n")


def leading_ws(line: str) -> str:
    """The whitespace that starts ``line``."""
    return line[: len(line) - len(line.lstrip(" \t"))]


def common_indent(lines: list[str]) -> str:
    """The longest whitespace prefix shared by every non-blank line."""
    indents = [leading_ws(line) for line in lines if line.strip()]
    if not indents:
        return ""
    prefix = indents[0]
    for indent in indents[1:]:
        while not indent.startswith(prefix):
            prefix = prefix[:-1]
    return prefix


def dedent_lines(lines: list[str], indent: str) -> list[str]:
    """Remove ``indent`` from every line that has it (blank lines become empty)."""
    return [
        line[len(indent) :] if line.startswith(indent) else line.lstrip(" \t") for line in lines
    ]


def indent_text(text: str, indent: str) -> str:
    """Prefix every non-blank line of ``text`` with ``indent``."""
    return "".join(indent + line if line.strip() else line for line in split_lines(text))


def normalise_endings(text: str, ending: str) -> str:
    """Replace every line break in ``text`` with ``ending``."""
    return _LINE_BREAK.sub(ending, text)
