"""Python scope facts used by the strategies and by validation: bound names, parents, headers."""

from __future__ import annotations

import ast
import builtins
import io
import tokenize

BUILTIN_NAMES = frozenset(dir(builtins))
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    """Map every node to its parent."""
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def bound_in_scope(statements: list[ast.stmt]) -> set[str]:
    """Names bound by ``statements`` in their own scope (not inside nested defs or lambdas)."""
    names: set[str] = set()
    stack: list[ast.AST] = list(statements)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            stack.extend(node.decorator_list)
            continue
        if isinstance(node, (ast.Lambda, *_COMPREHENSIONS)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
        stack.extend(ast.iter_child_nodes(node))
    return names


def all_bindings(tree: ast.AST) -> set[str]:
    """Every name bound anywhere in ``tree`` (any scope), parameters included."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def top_level_in(tree: ast.Module, start: int, end: int) -> list[ast.stmt]:
    """Statements lying in 0-based lines [start, end) whose parent statement does not."""
    result: list[ast.stmt] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.stmt):
                continue
            first = min([child.lineno] + [d.lineno for d in getattr(child, "decorator_list", [])])
            last = child.end_lineno or child.lineno
            if first - 1 >= start and last <= end:
                result.append(child)
            elif first - 1 < end and last > start:
                stack.append(child)
    return sorted(result, key=lambda n: n.lineno)


def header_end(source_lines: list[str], def_line: int) -> tuple[int, int] | None:
    """(0-based line, character) of the ``:`` ending the def/class header starting at ``def_line``.

    None if the header contains a comment (rewriting it would lose the comment) or is not found.
    """
    text = "".join(source_lines[def_line:])
    depth = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                return None
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
            elif token.type == tokenize.OP and token.string in ")]}":
                depth -= 1
            elif token.type == tokenize.OP and token.string == ":" and depth == 0:
                return def_line + token.start[0] - 1, token.start[1]
    except (tokenize.TokenError, SyntaxError):
        return None
    return None


def char_col(line: str, byte_col: int) -> int:
    """Convert an ast UTF-8 byte column into a ``str`` index for ``line``."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def node_lines(node: ast.AST) -> tuple[int, int]:
    """0-based [start, end) lines of ``node`` with its decorators."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])  # type: ignore[attr-defined]
    return first - 1, node.end_lineno or node.lineno  # type: ignore[attr-defined]
