"""The docstring strategy: ask only for the docstring sentence, then insert it quoted under the
signature (replacing an existing docstring); a class region gets one class docstring."""

from __future__ import annotations

import ast
import re
import textwrap

from lsp_server.refactor import prompts
from lsp_server.refactor.actions import Strategy
from lsp_server.refactor.pyscope import header_end, node_lines
from lsp_server.refactor.region import Region
from lsp_server.refactor.steps import Answer, InvalidAnswer, Plan, Replacement, Step
from lsp_server.refactor.strategies.common import (
    DEFS,
    LINE_WIDTH,
    MAX_TARGETS,
    one_line_body,
    region_defs,
    snippet,
)
from lsp_server.refactor.text import leading_ws, line_ending, split_lines

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


def plan(source: str, tree: ast.Module, region: Region) -> Plan | None:
    """A step per outermost def in ``region``; ``None`` when it holds none with a body block."""
    lines = split_lines(source)
    eol = line_ending(source)
    targets = [n for n in region_defs(tree, region, DEFS) if not one_line_body(lines, n)]
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
    code = snippet(lines, start, end)
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
