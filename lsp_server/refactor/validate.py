"""Checks a rewritten document must pass before its edit is offered.

Python: the whole file and the rewritten region still parse (when they did before), and names the
region defined that the rest of the file uses are still defined. Other languages: brackets and
quotes in the region balance exactly as they did before (so partial selections work), and the
whole file stays balanced if it was.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from lsp_server.refactor.pyscope import BUILTIN_NAMES, all_bindings, bound_in_scope, top_level_in
from lsp_server.refactor.region import parse_python
from lsp_server.refactor.text import common_indent, dedent_lines, split_lines

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}
_HASH_COMMENTS = {"python", "sh", "shellscript", "ruby", "perl", "r", "yaml", "toml", "makefile"}
_SLASH_COMMENTS = {
    "c", "cpp", "java", "javascript", "typescript", "javascriptreact", "typescriptreact",
    "go", "rust", "csharp", "kotlin", "swift", "scala", "dart", "php",
}  # fmt: skip
_NO_CHAR_QUOTES = {"rust"}  # 'a lifetimes


@dataclass(frozen=True)
class Verdict:
    """The validation result; ``reason`` completes the sentence "rejected because …"."""

    ok: bool
    reason: str = ""


OK = Verdict(True)


def validate(
    original: str, rewritten: str, language: str, span: tuple[int, int], new_span: tuple[int, int]
) -> Verdict:
    """Check ``rewritten`` (whose lines ``new_span`` replaced ``span`` of ``original``)."""
    if rewritten == original:
        return Verdict(False, "it changed nothing")
    if language == "python":
        return validate_python(original, rewritten, span, new_span)
    return validate_balance(original, rewritten, language, span, new_span)


def _lines(text: str, span: tuple[int, int]) -> str:
    chunk = split_lines(text)[span[0] : span[1]]
    chunk = [line.rstrip("\r\n") + "\n" for line in chunk]
    return "".join(dedent_lines(chunk, common_indent(chunk)))


def _parse_error(text: str) -> str | None:
    try:
        ast.parse(text)
    except SyntaxError as error:
        return f"line {error.lineno}: {error.msg}"
    except ValueError as error:
        return str(error)
    return None


def validate_python(
    original: str, rewritten: str, span: tuple[int, int], new_span: tuple[int, int]
) -> Verdict:
    """The Python checks (see the module docstring)."""
    old_tree = parse_python(original)
    if old_tree is not None:
        error = _parse_error(rewritten)
        if error:
            return Verdict(False, f"the file no longer parses ({error})")
    if _parse_error(_lines(original, span)) is None:
        error = _parse_error(_lines(rewritten, new_span))
        if error:
            return Verdict(False, f"the rewritten code does not parse ({error})")
    new_tree = parse_python(rewritten)
    if old_tree is None or new_tree is None:
        return OK
    defined = bound_in_scope(list(top_level_in(old_tree, *span)))
    used_outside = _used_outside(old_tree, span)
    still = (
        bound_in_scope(list(top_level_in(new_tree, *new_span)))
        | _bound_outside(new_tree, new_span)
        | set(BUILTIN_NAMES)
    )
    missing = sorted((defined & used_outside) - still)
    if missing:
        names = ", ".join(f"`{n}`" for n in missing)
        return Verdict(False, f"it removed {names}, which the rest of the file uses")
    return OK


def _outside(node: ast.AST, span: tuple[int, int]) -> bool:
    line = getattr(node, "lineno", None)
    return line is not None and not span[0] < line <= span[1]


def _used_outside(tree: ast.Module, span: tuple[int, int]) -> set[str]:
    """Names loaded (or attributes read) on lines outside ``span``."""
    used: set[str] = set()
    for node in ast.walk(tree):
        if not _outside(node, span):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module is None:
            used.update(alias.name for alias in node.names)
    return used


def _bound_outside(tree: ast.Module, span: tuple[int, int]) -> set[str]:
    """Names bound by statements lying outside ``span`` (descending into ones that straddle it)."""
    names: set[str] = set()
    stack: list[ast.AST] = [tree]
    while stack:
        for node in ast.iter_child_nodes(stack.pop()):
            if not isinstance(node, ast.stmt):
                continue
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            last = node.end_lineno or node.lineno
            if last <= span[0] or first > span[1]:
                names |= all_bindings(node)
            elif first - 1 < span[0] or last > span[1]:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
                stack.append(node)
    return names


def _code_only(tree: ast.AST, *, annotations: bool) -> str:
    """``ast.dump`` without docstrings (and without annotations unless ``annotations``)."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
        if not annotations:
            if isinstance(node, ast.arg):
                node.annotation = None
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                node.returns = None
    return ast.dump(tree)


def only_documentation_changed(original: str, rewritten: str, *, annotations: bool) -> Verdict:
    """For "Add docstring" / "Add type hints" in Python: the code itself must stay the same."""
    old, new = parse_python(original), parse_python(rewritten)
    if old is None or new is None:
        return OK  # parse checks already ran
    if _code_only(old, annotations=annotations) != _code_only(new, annotations=annotations):
        what = "docstrings" if annotations else "docstrings and type hints"
        return Verdict(False, f"it changed code, not only {what}")
    return OK


@dataclass(frozen=True)
class Balance:
    """Brackets left open, closers without an opener, and whether a string never ended."""

    unclosed: str
    unopened: str
    mismatched: bool
    open_string: bool

    @property
    def clean(self) -> bool:
        """Balanced with no mismatch."""
        return not (self.unclosed or self.unopened or self.mismatched or self.open_string)


def scan_balance(text: str, language: str) -> Balance:
    """Bracket and quote state of ``text``, skipping strings and comments of ``language``."""
    stack: list[str] = []
    unopened = ""
    mismatched = False
    quotes = "\"'`" if language not in _NO_CHAR_QUOTES else '"`'
    if language == "python":
        quotes = "\"'"
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        hash_comment = language in _HASH_COMMENTS and ch == "#"
        if hash_comment or (language in _SLASH_COMMENTS and text.startswith("//", i)):
            i = text.find("\n", i)
            i = n if i < 0 else i
            continue
        if language in _SLASH_COMMENTS and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch in quotes:
            triple = ch * 3 if language == "python" and text.startswith(ch * 3, i) else ""
            closer = triple or ch
            j = i + len(closer)
            while j < n:
                if text[j] == "\\":
                    j += 2
                    continue
                if text.startswith(closer, j):
                    break
                if text[j] == "\n" and not triple and ch != "`":
                    return Balance("".join(stack), unopened, mismatched, True)
                j += 1
            if j >= n:
                return Balance("".join(stack), unopened, mismatched, True)
            i = j + len(closer)
            continue
        if ch in _OPEN:
            stack.append(ch)
        elif ch in _CLOSE:
            if stack and stack[-1] == _CLOSE[ch]:
                stack.pop()
            elif stack:
                mismatched = True
                stack.pop()
            else:
                unopened += ch
        i += 1
    return Balance("".join(stack), unopened, mismatched, False)


def validate_balance(
    original: str, rewritten: str, language: str, span: tuple[int, int], new_span: tuple[int, int]
) -> Verdict:
    """The bracket/quote checks for languages we cannot parse."""
    old = scan_balance("".join(split_lines(original)[span[0] : span[1]]), language)
    new = scan_balance("".join(split_lines(rewritten)[new_span[0] : new_span[1]]), language)
    if new.open_string and not old.open_string:
        return Verdict(False, "a string or quote is never closed")
    if new.mismatched and not old.mismatched:
        return Verdict(False, "its brackets do not match")
    if (new.unclosed, new.unopened) != (old.unclosed, old.unopened):
        return Verdict(False, "its brackets do not balance")
    if scan_balance(original, language).clean and not scan_balance(rewritten, language).clean:
        return Verdict(False, "the file's brackets or quotes no longer balance")
    return OK
