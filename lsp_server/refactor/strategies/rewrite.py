"""The rewrite strategy: the model rewrites the whole region in a code fence, which we re-indent
and give the document's line endings. Every non-Python language uses it, and it is the fallback
when a Python strategy finds nothing to work on (or the file does not parse)."""

from __future__ import annotations

from lsp_server.refactor import prompts
from lsp_server.refactor.actions import RefactorAction, Strategy
from lsp_server.refactor.region import Region, RegionError
from lsp_server.refactor.steps import Answer, InvalidAnswer, Plan, Replacement, Step
from lsp_server.refactor.text import (
    common_indent,
    dedent_lines,
    line_ending,
    normalise_endings,
    split_lines,
    strip_ending,
)

MAX_REWRITE_LINES = 300


def plan(
    source: str, language: str, region: Region, action: RefactorAction, instruction: str
) -> Plan:
    """One step rewriting ``region``; ``RegionError`` when it is over ``MAX_REWRITE_LINES``."""
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
