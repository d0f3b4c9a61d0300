"""Which lines a refactor rewrites: the selection (widened to whole statements), or with an empty
selection the enclosing function or class (Python, via ``ast``) or the surrounding block."""

from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass

from lsp_server.refactor.text import leading_ws, split_lines

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_DEF_PREFIXES = ("def ", "async def ", "class ")


@dataclass(frozen=True)
class Selection:
    """An LSP range (0-based lines and characters)."""

    start_line: int
    start_character: int
    end_line: int
    end_character: int

    @property
    def empty(self) -> bool:
        """True for a bare cursor."""
        return (self.start_line, self.start_character) == (self.end_line, self.end_character)


@dataclass(frozen=True)
class Region:
    """Whole lines ``start_line`` (inclusive) to ``end_line`` (exclusive), 0-based."""

    start_line: int
    end_line: int
    kind: str
    """``function``, ``class``, ``selection`` or ``block``."""
    name: str | None = None
    """The function or class name when the region is one."""

    def text(self, source: str) -> str:
        """The region's lines of ``source``, line endings included."""
        return "".join(split_lines(source)[self.start_line : self.end_line])

    @property
    def label(self) -> str:
        """Short description for titles and messages, e.g. ``function `area```."""
        if self.name:
            return f"{self.kind} `{self.name}`"
        lines = self.end_line - self.start_line
        return f"{lines} selected line{'s' if lines != 1 else ''}"


class RegionError(ValueError):
    """There is nothing to refactor at the requested place (the message says what to do)."""


def parse_python(source: str) -> ast.Module | None:
    """``source`` parsed, or None when it is not valid Python."""
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


LOCAL_PARSE_CHARS = 32_000
"""Most source :func:`local_tree` parses. ``ast.parse`` holds the GIL (≈ 1 ms per KB here),
so the event loop, which lists actions on every cursor move, must never parse a whole file."""

_CONTINUATION = re.compile(r"(?:else|elif|except|finally)\b|[)\]}#]|[ \t\f\r\n]|$")
"""Column-0 text that continues a statement (or is none): a clause, a closing bracket, a
comment, indentation or a blank line."""


def _top_level_start(line: str) -> bool:
    """Whether ``line`` can begin a top-level statement."""
    return _CONTINUATION.match(line) is None


def local_tree(
    source: str, start_line: int, end_line: int, *, budget: int = LOCAL_PARSE_CHARS
) -> ast.Module | None:
    """The top-level statements around lines [start_line, end_line] parsed on their own.

    Line numbers in the result are the document's. A chunk is trusted only when the chunk
    grown by one top-level statement each side also parses and none of its statements
    straddles the chunk's edges (a column-0 ``def`` inside a triple-quoted string would
    otherwise pass for code); else the chunk grows and is tried again. None when nothing within
    ``budget`` characters qualifies: callers then fall back to indentation. O(chunk), not
    O(document).
    """
    lines = split_lines(source)
    if not lines:
        return None
    first = max(0, min(start_line, len(lines) - 1))
    start, end = _statement_bounds(lines, first, max(first, min(end_line, len(lines) - 1)) + 1)
    while True:
        outer_start, outer_end = _statement_bounds(
            lines, max(0, start - 1), min(len(lines), end + 1)
        )
        if sum(len(line) for line in lines[outer_start:outer_end]) > budget:
            return None
        tree = parse_python("".join(lines[start:end]))
        if tree is not None and _edges_hold(lines, outer_start, outer_end, start, end):
            return ast.increment_lineno(tree, start) if start else tree
        if (outer_start, outer_end) == (start, end):
            return None  # the whole (small) document does not parse
        start, end = outer_start, outer_end


def _statement_bounds(lines: list[str], start: int, end: int) -> tuple[int, int]:
    """Widen [start, end) to top-level statement boundaries (decorators kept with their def)."""
    while start > 0 and not _top_level_start(lines[start]):
        start -= 1
    while start > 0 and lines[start - 1].startswith("@"):
        start -= 1
    while end < len(lines) and not _top_level_start(lines[end]):
        end += 1
    return start, end


def _edges_hold(lines: list[str], outer_start: int, outer_end: int, start: int, end: int) -> bool:
    """Whether [start, end) is a run of whole statements of the bigger chunk around it."""
    if (outer_start, outer_end) == (start, end):
        return True
    outer = parse_python("".join(lines[outer_start:outer_end]))
    if outer is None:
        return False
    for node in outer.body:
        first, last = _span(node)
        first, last = first + outer_start, last + outer_start
        if first < start < last or first < end < last:
            return False
    return True


def def_start(node: ast.AST) -> int:
    """1-based first line of a def/class, decorators included."""
    lines = [node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]  # type: ignore[attr-defined]
    return min(lines)


def select_region(
    source: str,
    selection: Selection,
    language: str,
    tree: ast.Module | None = None,
    *,
    parse: bool = True,
) -> Region:
    """The region an action rewrites for ``selection``; ``RegionError`` if there is none.

    ``tree`` may pass an already parsed ``source`` (or a :func:`local_tree` of it);
    ``parse=False`` never parses the whole document (no tree: indentation decides).
    """
    lines = split_lines(source)
    if not any(line.strip() for line in lines):
        raise RegionError("the document is empty: there is nothing to refactor")
    if tree is None and language == "python" and parse:
        tree = parse_python(source)
    if selection.empty:
        line = min(selection.start_line, len(lines) - 1)
        if tree is not None:
            node = _enclosing_def(tree, line + 1)
            return _def_region(node) if node is not None else _block(lines, line)
        return _indentation_def(lines, line) or _block(lines, line)
    start = min(selection.start_line, len(lines) - 1)
    end = selection.end_line + (0 if selection.end_character == 0 else 1)
    end = max(start + 1, min(end, len(lines)))
    if tree is not None:
        start, end = _widen_to_statements(tree, start, end)
        exact = [
            n
            for n in _overlapping(tree, start, end)
            if isinstance(n, _DEFS) and _span(n) == (start, end)
        ]
        if exact:
            return _def_region(exact[0])
    while start < end - 1 and not lines[start].strip():
        start += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    if not any(line.strip() for line in lines[start:end]):
        raise RegionError("the selection is blank: select code to refactor")
    return Region(start, end, "selection")


def _span(node: ast.AST) -> tuple[int, int]:
    """0-based [start, end) lines of a statement node, decorators included."""
    return def_start(node) - 1, node.end_lineno or node.lineno  # type: ignore[attr-defined]


def _def_region(node: ast.AST) -> Region:
    start, end = _span(node)
    kind = "class" if isinstance(node, ast.ClassDef) else "function"
    return Region(start, end, kind, node.name)  # type: ignore[attr-defined]


def _overlapping(tree: ast.Module, start: int, end: int) -> list[ast.stmt]:
    """Statements overlapping 0-based lines [start, end), found top-down: listing a large file
    must not walk its whole tree on every cursor move."""
    found: list[ast.stmt] = []
    # The module body is sorted and usually long: bisect it; nested bodies are short.
    ends = [n.end_lineno or n.lineno for n in tree.body]
    first = bisect.bisect_right(ends, start)
    stack: list[ast.AST] = []
    for top in tree.body[first:]:
        s, e = _span(top)
        if s >= end:
            break
        if e > start:
            found.append(top)
            stack.append(top)
    while stack:
        for child in ast.iter_child_nodes(stack.pop()):
            if isinstance(child, ast.stmt):
                s, e = _span(child)
                if s < end and e > start:
                    found.append(child)
                    stack.append(child)
            elif isinstance(child, (ast.excepthandler, ast.match_case)):
                stack.append(child)
    return found


def _enclosing_def(tree: ast.Module, line: int) -> ast.AST | None:
    """The innermost def/class whose lines (1-based, decorators included) contain ``line``."""
    defs = [n for n in _overlapping(tree, line - 1, line) if isinstance(n, _DEFS)]
    return max(defs, key=def_start) if defs else None


def _widen_to_statements(tree: ast.Module, start: int, end: int) -> tuple[int, int]:
    """Grow [start, end) until no statement straddles its edges."""
    changed = True
    while changed:
        changed = False
        for s, e in (_span(n) for n in _overlapping(tree, start, end)):
            contains = s <= start and e >= end
            if not contains and (s < start or e > end):
                start, end = min(start, s), max(end, e)
                changed = True
    return start, end


def _indentation_def(lines: list[str], line: int) -> Region | None:
    """For code that does not parse: the nearest ``def``/``class`` above by indentation."""
    cursor_indent = len(leading_ws(lines[line])) if lines[line].strip() else 10**9
    for head in range(line, -1, -1):
        text = lines[head].lstrip(" \t")
        indent = len(leading_ws(lines[head]))
        if text.startswith(_DEF_PREFIXES) and (head == line or indent < cursor_indent):
            end = head + 1
            while end < len(lines) and (
                not lines[end].strip() or len(leading_ws(lines[end])) > indent
            ):
                end += 1
            while end > head + 1 and not lines[end - 1].strip():
                end -= 1
            if end <= line and head != line:
                continue
            name = text.split("(")[0].split(":")[0].split()[-1]
            kind = "class" if text.startswith("class ") else "function"
            return Region(head, end, kind, name)
    return None


def _block(lines: list[str], line: int) -> Region:
    """The blank-line delimited block around ``line``."""
    if not lines[line].strip():
        raise RegionError("the cursor is on a blank line: select the code to refactor")
    start = line
    while start > 0 and lines[start - 1].strip():
        start -= 1
    end = line + 1
    while end < len(lines) and lines[end].strip():
        end += 1
    return Region(start, end, "block")
