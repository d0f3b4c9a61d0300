"""What a refactor plan is made of: model steps, their answers and the line replacements.

A step's ``apply`` raises ``InvalidAnswer`` (with a reason the retry prompt quotes back to the
model) instead of producing something we would have to reject later.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from lsp_server.refactor.actions import Strategy
from lsp_server.refactor.prompts import ModelPrompt
from lsp_server.refactor.text import line_ending, split_lines


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
