"""Turn a refactor request into model steps, and each model answer into a line replacement.

A step's ``apply`` raises ``InvalidAnswer`` (with a reason the retry prompt quotes back to the
model) instead of producing something we would have to reject later. See ``actions`` for the
per-action strategies.
"""

from __future__ import annotations

import ast
import itertools
import keyword
import re
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from lsp_server.refactor import prompts
from lsp_server.refactor.actions import RefactorAction, Strategy, strategy_for
from lsp_server.refactor.prompts import ModelPrompt
from lsp_server.refactor.pyscope import (
    BUILTIN_NAMES,
    all_bindings,
    bound_in_scope,
    char_col,
    header_end,
    node_lines,
    parents,
)
from lsp_server.refactor.region import Region, RegionError, parse_python
from lsp_server.refactor.text import (
    common_indent,
    dedent_lines,
    leading_ws,
    line_ending,
    normalise_endings,
    split_lines,
    strip_ending,
)

MAX_REWRITE_LINES = 300
MAX_CONTEXT_LINES = 80
MAX_TARGETS = 8
LINE_WIDTH = 100
_FUNCS = (ast.FunctionDef, ast.AsyncFunctionDef)
_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class InvalidAnswer(ValueError):
    """The model's answer cannot be used; the message completes "rejected because …"."""


@dataclass(frozen=True)
class Answer:
    """What the model generated after the prefill."""

    text: str
    finished: bool
    """True when a stop string or the end-of-turn token ended the answer (not the token limit)."""


@dataclass(frozen=True)
class Replacement:
    """Replace 0-based lines [start, end) of the original document with ``text``."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Step:
    """One model call and how its answer becomes a replacement."""

    description: str
    prompt: Callable[[str | None], ModelPrompt]
    """Builds the prompt; the argument is the previous rejection reason (for the retry)."""
    apply: Callable[[Answer], Replacement]


@dataclass(frozen=True)
class Plan:
    """All steps of a refactor; ``empty_reason`` explains a plan with nothing to do."""

    steps: list[Step]
    strategy: Strategy
    targets: list[str]
    empty_reason: str = ""


def make_plan(
    source: str,
    language: str,
    region: Region,
    action: RefactorAction,
    instruction: str = "",
    tree: ast.Module | None = None,
    *,
    strategy: Strategy | None = None,
) -> Plan:
    """The steps for ``action`` on ``region``; ``RegionError`` when the region is unusable.

    ``strategy`` overrides the action's own (the benchmark compares constrained and rewrite).
    """
    if action.needs_instruction and not instruction.strip():
        raise RegionError("this action needs an instruction (what to change)")
    strategy = strategy or strategy_for(action, language)
    if strategy is not Strategy.REWRITE:
        if tree is None:
            tree = parse_python(source)
        if tree is not None:
            builder = {
                Strategy.DOCSTRING_TEXT: _docstring_plan,
                Strategy.SIGNATURES: _signature_plan,
                Strategy.RENAME_MAP: _rename_plan,
            }[strategy]
            plan = builder(source, tree, region)
            if plan is not None:
                return plan
    return _rewrite_plan(source, language, region, action, instruction)


def apply_replacements(source: str, replacements: list[Replacement]) -> str:
    """``source`` with non-overlapping line ``replacements`` applied (bottom-up)."""
    lines = split_lines(source)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += line_ending(source)
        had_final_newline = False
    else:
        had_final_newline = True
    ordered = sorted(replacements, key=lambda r: (r.start, r.end))
    for earlier, later in itertools.pairwise(ordered):
        if later.start < earlier.end:
            raise ValueError("overlapping replacements")
    for item in reversed(ordered):
        lines[item.start : item.end] = [item.text]
    result = "".join(lines)
    if not had_final_newline:
        ending = line_ending(source)
        if result.endswith(ending):
            result = result[: -len(ending)]
    return result


# --- helpers ---------------------------------------------------------------------------------


def _snippet(lines: list[str], start: int, end: int) -> str:
    """Dedented lines [start, end), cut to MAX_CONTEXT_LINES for the prompt."""
    chunk = [strip_ending(line) + "\n" for line in lines[start:end]]
    chunk = dedent_lines(chunk, common_indent(chunk))
    if len(chunk) > MAX_CONTEXT_LINES:
        chunk = [*chunk[:MAX_CONTEXT_LINES], "    ...\n"]
    return "".join(chunk)


def _region_defs(tree: ast.Module, region: Region, kinds: tuple[type, ...]) -> list[ast.AST]:
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


def _one_line_body(lines: list[str], node: ast.AST) -> bool:
    """True when the def's body starts on its header line (``def f(): return 1``)."""
    end = header_end(lines, node.lineno - 1)  # type: ignore[attr-defined]
    body = node.body  # type: ignore[attr-defined]
    return end is None or body[0].lineno - 1 <= end[0]


# --- docstring -------------------------------------------------------------------------------


_ECHOED_SIGNATURE = re.compile(r"^(async\s+)?def\s+\w+\s*\([^)]*\)\s*(->\s*[^:]+)?:\s*")


def clean_docstring(text: str) -> str:
    """The first paragraph of a model's docstring answer, tidied; ``InvalidAnswer`` if unusable."""
    text = text.split('"""')[0].split("'''")[0].replace("\r", "")
    paragraph = ""
    for block in re.split(r"\n\s*\n", text):
        if block.strip():
            paragraph = block
            break
    words = " ".join(paragraph.split()).strip().strip("`'\"").strip()
    words = re.sub(r"^(docstring|summary)\s*:\s*", "", words, flags=re.IGNORECASE)
    # Small models often echo the signature first ("def area(w, h): Returns ..."): drop it.
    words = _ECHOED_SIGNATURE.sub("", words).strip()
    if len(re.findall(r"[A-Za-z]", words)) < 3:
        raise InvalidAnswer("the docstring was empty")
    symbols = sum(ch in "=[]{}()*+/<>;" for ch in words)
    if "```" in words or re.search(r"\bdef \w+\(", words) or symbols > len(words) // 10:
        raise InvalidAnswer("the docstring contained code instead of a description")
    sentences = re.split(r"(?<=[.!?])\s+", words)
    words = " ".join(sentences[:2])
    if len(words) > 300:
        words = words[:300].rsplit(" ", 1)[0]
    words = words[0].upper() + words[1:]
    if words[-1] not in ".!?":
        words += "."
    return words.replace("\\", "\\\\")


def format_docstring(text: str, indent: str, eol: str) -> str:
    """A quoted docstring at ``indent``: one line if it fits, else wrapped with closing quotes below."""
    one_line = f'{indent}"""{text}"""'
    if len(one_line) <= LINE_WIDTH:
        return one_line + eol
    width = max(40, LINE_WIDTH - len(indent))
    wrapped = textwrap.wrap(f'"""{text}', width=width)
    body = eol.join(indent + line for line in wrapped)
    return f'{body}{eol}{indent}"""{eol}'


def _docstring_plan(source: str, tree: ast.Module, region: Region) -> Plan | None:
    lines = split_lines(source)
    eol = line_ending(source)
    targets = [n for n in _region_defs(tree, region, _DEFS) if not _one_line_body(lines, n)]
    # Document the outermost defs only: a class region gets a class docstring, not one per method.
    outer = [
        n
        for n in targets
        if not any(o is not n and node_lines(o)[0] < n.lineno <= o.end_lineno for o in targets)  # type: ignore[attr-defined]
    ][:MAX_TARGETS]
    if not outer:
        return None
    steps = [_docstring_step(lines, node, eol) for node in outer]
    return Plan(steps, Strategy.DOCSTRING_TEXT, [n.name for n in outer])  # type: ignore[attr-defined]


def _docstring_step(lines: list[str], node: ast.AST, eol: str) -> Step:
    start, end = node_lines(node)
    name: str = node.name  # type: ignore[attr-defined]
    kind = "class" if isinstance(node, ast.ClassDef) else "function"
    code = _snippet(lines, start, end)
    body = node.body  # type: ignore[attr-defined]
    indent = leading_ws(lines[body[0].lineno - 1])
    existing = ast.get_docstring(node, clean=False) is not None  # type: ignore[arg-type]
    if existing:
        span = (body[0].lineno - 1, body[0].end_lineno)
    else:
        colon_line = header_end(lines, node.lineno - 1)[0]  # type: ignore[attr-defined,index]
        span = (colon_line + 1, colon_line + 1)

    code_lines = [" ".join(line.split()) for line in code.splitlines()[1:]]
    echoes = [line for line in code_lines if len(line) >= 12 and not line.startswith(("#", '"'))]

    def apply(answer: Answer) -> Replacement:
        text = clean_docstring(answer.text)
        flat = " ".join(text.split()).lower()
        if any(line.lower() in flat for line in echoes):
            raise InvalidAnswer("the docstring repeated the code instead of describing it")
        return Replacement(span[0], span[1], format_docstring(text, indent, eol))

    return Step(
        f"docstring for `{name}`",
        lambda feedback: prompts.docstring_prompt(code, kind, name, feedback),
        apply,
    )


# --- type hints ------------------------------------------------------------------------------


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


def _signature_plan(source: str, tree: ast.Module, region: Region) -> Plan | None:
    lines = split_lines(source)
    eol = line_ending(source)
    parent = parents(tree)
    known = set(BUILTIN_NAMES) | bound_in_scope(tree.body)
    steps: list[Step] = []
    names: list[str] = []
    found_any = False
    for node in _region_defs(tree, region, _FUNCS):
        assert isinstance(node, _FUNCS)
        if _one_line_body(lines, node) or header_end(lines, node.lineno - 1) is None:
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
    code = _snippet(lines, *node_lines(node))

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
        if not isinstance(new, _FUNCS) or new.name != node.name:
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


# --- rename ----------------------------------------------------------------------------------

_PAIR = re.compile(r"^[\s\-*\d.)`]*([A-Za-z_]\w*)`?\s*(?:->|=>|→|:|=)\s*`?([A-Za-z_]\w*)")


def parse_renames(text: str) -> list[tuple[str, str]]:
    """``old -> new`` pairs in a model answer (also accepts ``=>``, ``:`` and ``=``)."""
    pairs = []
    for line in text.splitlines():
        match = _PAIR.match(line)
        if match:
            pairs.append((match.group(1), match.group(2)))
    return pairs


def _rename_plan(source: str, tree: ast.Module, region: Region) -> Plan | None:
    lines = split_lines(source)
    parent = parents(tree)
    module_names = bound_in_scope(tree.body) | set(BUILTIN_NAMES)
    steps: list[Step] = []
    names: list[str] = []
    scopes = [
        n
        for n in _region_defs(tree, region, _FUNCS)
        if not any(isinstance(p, _FUNCS) for p in _ancestors(n, parent))
    ]
    for node in scopes[:MAX_TARGETS]:
        assert isinstance(node, _FUNCS)
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
        n.name for n in ast.walk(node) if isinstance(n, _DEFS) and n is not node
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
    code = _snippet(lines, start, end)
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


# --- rewrite ---------------------------------------------------------------------------------


def _rewrite_plan(
    source: str, language: str, region: Region, action: RefactorAction, instruction: str
) -> Plan:
    lines = split_lines(source)
    if region.end_line - region.start_line > MAX_REWRITE_LINES:
        raise RegionError(f"the selection is too long: select at most {MAX_REWRITE_LINES} lines")
    eol = line_ending(source)
    chunk = [strip_ending(line) + "\n" for line in lines[region.start_line : region.end_line]]
    indent = common_indent(chunk)
    code = "".join(dedent_lines(chunk, indent))
    goal = action.goal.format(instruction=" ".join(instruction.split()))
    budget = min(1024, int(len(code) / 3 * 1.5) + 96)
    last_has_eol = lines[region.end_line - 1].endswith(("\n", "\r"))

    def apply(answer: Answer) -> Replacement:
        if not answer.finished:
            raise InvalidAnswer("the answer was cut off before the end of the code block")
        new_lines = [strip_ending(line).rstrip() + "\n" for line in split_lines(answer.text)]
        while new_lines and not new_lines[0].strip():
            new_lines.pop(0)
        while new_lines and not new_lines[-1].strip():
            new_lines.pop()
        if not new_lines:
            raise InvalidAnswer("the code block was empty")
        new_indent = common_indent(new_lines)
        body = "".join(dedent_lines(new_lines, new_indent))
        text = "".join(indent + line if line.strip() else "\n" for line in split_lines(body))
        text = normalise_endings(text, eol)
        if not last_has_eol:
            text = text[: -len(eol)]
        return Replacement(region.start_line, region.end_line, text)

    step = Step(
        f"{action.title.rstrip('…').lower()} ({region.label})",
        lambda feedback: prompts.rewrite_prompt(
            code, language, goal, feedback, max_new_tokens=budget
        ),
        apply,
    )
    return Plan([step], Strategy.REWRITE, [region.name] if region.name else [])
