"""The type-hints strategy: ask only for each function's ``def`` line (prefilled up to the first
unannotated parameter), then keep the original parameters and defaults and take only
annotations whose names exist in the file (else importing the module would fail)."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from lsp_server.refactor import prompts
from lsp_server.refactor.actions import Strategy
from lsp_server.refactor.pyscope import (
    BUILTIN_NAMES,
    bound_in_scope,
    header_end,
    node_lines,
    parents,
)
from lsp_server.refactor.region import Region
from lsp_server.refactor.steps import Answer, InvalidAnswer, Plan, Replacement, Step
from lsp_server.refactor.strategies.common import (
    FUNCS,
    LINE_WIDTH,
    MAX_TARGETS,
    one_line_body,
    region_defs,
    snippet,
)
from lsp_server.refactor.text import leading_ws, line_ending, split_lines, strip_ending


@dataclass(frozen=True)
class _Param:
    kind: str  # "pos", "/", "*", "vararg", "kwonly", "kwarg"
    arg: ast.arg | None
    default: ast.expr | None

    @property
    def name(self) -> str:
        return self.arg.arg if self.arg else ""

    @property
    def signature_key(self) -> tuple[str, str]:
        return self.kind, self.name


def _params(args: ast.arguments) -> list[_Param]:
    """Parameters in source order with ``/`` and bare ``*`` markers."""
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    out: list[_Param] = []
    for index, arg in enumerate(positional):
        out.append(_Param("pos", arg, defaults[index]))
        if args.posonlyargs and index == len(args.posonlyargs) - 1:
            out.append(_Param("/", None, None))
    if args.vararg:
        out.append(_Param("vararg", args.vararg, None))
    elif args.kwonlyargs:
        out.append(_Param("*", None, None))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        out.append(_Param("kwonly", arg, default))
    if args.kwarg:
        out.append(_Param("kwarg", args.kwarg, None))
    return out


def _segment(source: str, node: ast.AST | None) -> str:
    if node is None:
        return ""
    text = ast.get_source_segment(source, node)
    return " ".join((text if text is not None else ast.unparse(node)).split())


def _param_text(param: _Param, annotation: str, default: str) -> str:
    if param.kind in ("/", "*"):
        return param.kind
    stars = {"vararg": "*", "kwarg": "**"}.get(param.kind, "")
    text = stars + param.name + (f": {annotation}" if annotation else "")
    if default:
        text += f" = {default}" if annotation else f"={default}"
    return text


def _usable(node: ast.expr, known: set[str]) -> bool:
    """An annotation may only use names that exist here (else importing the module fails)."""
    if any(isinstance(n, ast.Constant) and isinstance(n.value, str) for n in ast.walk(node)):
        return False
    names = [n.id for n in ast.walk(node) if isinstance(n, ast.Name)]
    if not names:
        return isinstance(node, ast.Constant) and node.value is None
    return all(name in known for name in names)


def plan(source: str, tree: ast.Module, region: Region) -> Plan | None:
    """A step per function in ``region`` missing hints; ``None`` when it holds no function."""
    lines = split_lines(source)
    eol = line_ending(source)
    parent = parents(tree)
    known = set(BUILTIN_NAMES) | bound_in_scope(tree.body)
    steps: list[Step] = []
    names: list[str] = []
    found_any = False
    for node in region_defs(tree, region, FUNCS):
        assert isinstance(node, FUNCS)
        if one_line_body(lines, node) or header_end(lines, node.lineno - 1) is None:
            continue
        found_any = True
        is_method = isinstance(parent.get(node), ast.ClassDef)
        step = _signature_step(source, lines, node, is_method, known, eol)
        if step is not None:
            steps.append(step)
            names.append(node.name)
        if len(steps) >= MAX_TARGETS:
            break
    if not found_any:
        return None
    reason = "" if steps else "every function here is already fully annotated"
    return Plan(steps, Strategy.SIGNATURES, names, reason)


def _signature_step(
    source: str,
    lines: list[str],
    node: ast.FunctionDef | ast.AsyncFunctionDef,
    is_method: bool,
    known: set[str],
    eol: str,
) -> Step | None:
    params = _params(node.args)
    skip_first = is_method and params and params[0].name in ("self", "cls")
    todo = [
        i
        for i, p in enumerate(params)
        if p.arg is not None and p.arg.annotation is None and not (skip_first and i == 0)
    ]
    if not todo and node.returns is not None:
        return None
    head = ("async " if isinstance(node, ast.AsyncFunctionDef) else "") + f"def {node.name}("
    done = [
        _param_text(
            p, _segment(source, p.arg.annotation if p.arg else None), _segment(source, p.default)
        )
        for p in params
    ]
    if todo:
        first = todo[0]
        stars = {"vararg": "*", "kwarg": "**"}.get(params[first].kind, "")
        prefill = head + "".join(t + ", " for t in done[:first]) + f"{stars}{params[first].name}: "
    else:
        prefill = head + ", ".join(done) + ") -> "
    def_line = node.lineno - 1
    colon_line, colon_char = header_end(lines, def_line)  # type: ignore[misc]
    trailing = strip_ending(lines[colon_line])[colon_char + 1 :]
    indent = leading_ws(lines[def_line])
    code = snippet(lines, *node_lines(node))

    def apply(answer: Answer) -> Replacement:
        text = prefill + answer.text.split("\n```")[0]
        text = text.strip()
        if not text.endswith(":"):
            text += ":"
        try:
            parsed = ast.parse(text + "\n    pass\n")
        except SyntaxError:
            raise InvalidAnswer("the signature did not parse") from None
        new = parsed.body[0] if parsed.body else None
        if not isinstance(new, FUNCS) or new.name != node.name:
            raise InvalidAnswer(f"the answer was not a signature of `{node.name}`")
        new_params = _params(new.args)
        if [p.signature_key for p in new_params] != [p.signature_key for p in params]:
            raise InvalidAnswer("it changed the parameters (names, order or kinds)")
        added = 0
        texts = []
        for old_p, new_p in zip(params, new_params, strict=True):
            annotation = _segment(source, old_p.arg.annotation if old_p.arg else None)
            candidate = new_p.arg.annotation if new_p.arg else None
            if not annotation and candidate is not None and _usable(candidate, known):
                annotation = _segment(text, candidate)
                added += 1
            texts.append(_param_text(old_p, annotation, _segment(source, old_p.default)))
        returns = _segment(source, node.returns)
        if not returns and new.returns is not None and _usable(new.returns, known):
            returns = _segment(text, new.returns)
            added += 1
        if not added:
            raise InvalidAnswer(
                "it proposed no usable type hints (only built-in or imported names)"
            )
        header = _layout(indent, head, texts, returns, trailing, eol)
        return Replacement(def_line, colon_line + 1, header)

    return Step(
        f"type hints for `{node.name}`",
        lambda feedback: prompts.signature_prompt(code, prefill, feedback),
        apply,
    )


def _layout(
    indent: str, head: str, params: list[str], returns: str, trailing: str, eol: str
) -> str:
    tail = (f" -> {returns}" if returns else "") + ":" + trailing.rstrip()
    one_line = f"{indent}{head}{', '.join(params)}){tail}"
    if len(one_line) <= LINE_WIDTH or not params:
        return one_line + eol
    inner = indent + "    "
    body = "".join(f"{inner}{p},{eol}" for p in params)
    return f"{indent}{head}{eol}{body}{indent}){tail}{eol}"
