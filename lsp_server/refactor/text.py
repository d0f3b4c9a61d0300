"""Line handling shared by the refactor core: LSP line breaks and indentation.

Columns in the negotiated position encoding come from ``lsp_server.text.units``.
"""

from __future__ import annotations

import re

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_OTHER_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
"""Characters ``str.splitlines`` breaks on but LSP does not."""


def split_lines(text: str) -> list[str]:
    """Split ``text`` into lines keeping their endings, breaking only where LSP does.

    ``str.splitlines`` also breaks on form feeds and Unicode separators, which would put our
    line numbers out of step with the editor's.
    """
    if not _OTHER_BREAKS.search(text):
        return text.splitlines(keepends=True)  # same result, much faster
    lines: list[str] = []
    start = 0
    for match in _LINE_BREAK.finditer(text):
        lines.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


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
