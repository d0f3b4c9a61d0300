"""Limits and syntax-tree helpers shared by the Python strategies: which defs a region holds,
and the code shown to the model for one of them."""

from __future__ import annotations

import ast

from lsp_server.refactor.pyscope import header_end, node_lines
from lsp_server.refactor.region import Region
from lsp_server.refactor.text import common_indent, dedent_lines, strip_ending

MAX_CONTEXT_LINES = 80
MAX_TARGETS = 8
LINE_WIDTH = 100
FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def snippet(lines: list[str], start: int, end: int) -> str:
    """Dedented lines [start, end), cut to MAX_CONTEXT_LINES for the prompt."""
    chunk = [strip_ending(line) + "\n" for line in lines[start:end]]
    chunk = dedent_lines(chunk, common_indent(chunk))
    if len(chunk) > MAX_CONTEXT_LINES:
        chunk = [*chunk[:MAX_CONTEXT_LINES], "    ...\n"]
    return "".join(chunk)


def region_defs(tree: ast.Module, region: Region, kinds: tuple[type, ...]) -> list[ast.AST]:
    """Defs of ``kinds`` inside ``region`` (outermost first by line); else the enclosing one."""
    inside = []
    enclosing = None
    for node in ast.walk(tree):
        if not isinstance(node, kinds):
            continue
        start, end = node_lines(node)
        if start >= region.start_line and end <= region.end_line:
            inside.append(node)
        elif (
            start <= region.start_line
            and end >= region.end_line
            and (enclosing is None or start >= node_lines(enclosing)[0])
        ):
            enclosing = node
    inside.sort(key=lambda n: n.lineno)  # type: ignore[attr-defined]
    if inside:
        return inside
    return [enclosing] if enclosing is not None else []


def one_line_body(lines: list[str], node: ast.AST) -> bool:
    """True when the def's body starts on its header line (``def f(): return 1``)."""
    end = header_end(lines, node.lineno - 1)  # type: ignore[attr-defined]
    body = node.body  # type: ignore[attr-defined]
    return end is None or body[0].lineno - 1 <= end[0]
