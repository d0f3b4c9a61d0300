"""The rename strategy: ask for ``old -> new`` pairs (prefilled with the shortest local name),
then rename local variables and positional parameters through the syntax tree — never
attributes, strings or keyword-only parameters, never to a name already used, and never a
parameter this file passes by keyword."""

from __future__ import annotations

import ast
import keyword
import re

from lsp_server.refactor import prompts
from lsp_server.refactor.actions import Strategy
from lsp_server.refactor.pyscope import (
    BUILTIN_NAMES,
    all_bindings,
    bound_in_scope,
    char_col,
    node_lines,
    parents,
)
from lsp_server.refactor.region import Region
from lsp_server.refactor.steps import Answer, InvalidAnswer, Plan, Replacement, Step
from lsp_server.refactor.strategies.common import DEFS, FUNCS, MAX_TARGETS, region_defs, snippet
from lsp_server.refactor.text import split_lines

_PAIR = re.compile(r"^[\s\-*\d.)`]*([A-Za-z_]\w*)`?\s*(?:->|=>|→|:|=)\s*`?([A-Za-z_]\w*)")


def parse_renames(text: str) -> list[tuple[str, str]]:
    """``old -> new`` pairs in a model answer (also accepts ``=>``, ``:`` and ``=``)."""
    pairs = []
    for line in text.splitlines():
        match = _PAIR.match(line)
        if match:
            pairs.append((match.group(1), match.group(2)))
    return pairs


def plan(source: str, tree: ast.Module, region: Region) -> Plan | None:
    """A step per outermost function in ``region``; ``None`` when it holds no function."""
    lines = split_lines(source)
    parent = parents(tree)
    module_names = bound_in_scope(tree.body) | set(BUILTIN_NAMES)
    steps: list[Step] = []
    names: list[str] = []
    scopes = [
        n
        for n in region_defs(tree, region, FUNCS)
        if not any(isinstance(p, FUNCS) for p in _ancestors(n, parent))
    ]
    for node in scopes[:MAX_TARGETS]:
        assert isinstance(node, FUNCS)
        step = _rename_step(source, lines, node, parent, module_names)
        if step is not None:
            steps.append(step)
            names.append(node.name)
    if not scopes:
        return None
    reason = "" if steps else "there are no local variables or parameters to rename here"
    return Plan(steps, Strategy.RENAME_MAP, names, reason)


def _ancestors(node: ast.AST, parent: dict[ast.AST, ast.AST]) -> list[ast.AST]:
    out = []
    while node in parent:
        node = parent[node]
        out.append(node)
    return out


def _rename_step(
    source: str,
    lines: list[str],
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    parent: dict[ast.AST, ast.AST],
    module_names: set[str],
) -> Step | None:
    is_method = isinstance(parent.get(node), ast.ClassDef)
    # Keyword-only parameters are never renamed: every caller passes them by name.
    params = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
    params += [a.arg for a in (node.args.vararg, node.args.kwarg) if a is not None]
    if is_method and params and params[0] in ("self", "cls"):
        params = params[1:]
    locals_ = bound_in_scope(node.body) - {
        n.name for n in ast.walk(node) if isinstance(n, DEFS) and n is not node
    }
    excluded: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, (ast.Global, ast.Nonlocal)):
            excluded.update(sub.names)
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            excluded.add(sub.name)
    excluded.update(a.arg for a in node.args.kwonlyargs)
    candidates = [n for n in dict.fromkeys([*params, *sorted(locals_)]) if n not in excluded]
    candidates = [n for n in candidates if not (n.startswith("__") and n.endswith("__"))]
    if not candidates:
        return None
    candidates.sort(key=lambda n: (len(n), n))
    candidates = candidates[:MAX_TARGETS]
    start, end = node_lines(node)
    outside = "".join(lines[:start] + lines[end:])
    taken = (
        all_bindings(node)
        | module_names
        | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
        | {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    )
    code = snippet(lines, start, end)
    prefill = f"{candidates[0]} -> "

    def apply(answer: Answer) -> Replacement:
        renames: dict[str, str] = {}
        for old, new in parse_renames(prefill + answer.text):
            if old not in candidates or old in renames or new == old:
                continue
            if keyword.iskeyword(new) or new in taken or new in renames.values():
                continue
            if old in params and re.search(rf"\b{re.escape(old)}\s*=(?!=)", outside):
                continue  # callers may pass it by keyword
            renames[old] = new
        if not renames:
            raise InvalidAnswer(
                "it proposed no usable `old -> new` renames of the listed variables"
            )
        return Replacement(start, end, _rename_text(lines, node, renames, start, end))

    return Step(
        f"renames in `{node.name}`",
        lambda feedback: prompts.rename_prompt(code, candidates, prefill, feedback),
        apply,
    )


def _rename_text(
    lines: list[str], node: ast.AST, renames: dict[str, str], start: int, end: int
) -> str:
    spots: list[tuple[int, int, str, str]] = []  # (line, byte col, old, new)
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in renames:
            spots.append((sub.lineno - 1, sub.col_offset, sub.id, renames[sub.id]))
        elif isinstance(sub, ast.arg) and sub.arg in renames:
            spots.append((sub.lineno - 1, sub.col_offset, sub.arg, renames[sub.arg]))
    edited = list(lines[start:end])
    for line_no, byte_col, old, new in sorted(spots, reverse=True):
        line = edited[line_no - start]
        col = char_col(line, byte_col)
        if line[col : col + len(old)] != old:
            raise InvalidAnswer(f"`{old}` could not be located for renaming")
        edited[line_no - start] = line[:col] + new + line[col + len(old) :]
    return "".join(edited)
