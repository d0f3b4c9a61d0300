"""Plan → generate → apply → validate, with one retry: the whole refactor, minus LSP and torch.

``run_refactor`` takes the model as a callback, so it is unit-tested with scripted answers and
used by the server with ``generate.generate_answer`` on the shared model.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lsp_server.refactor.actions import RefactorAction, Strategy
from lsp_server.refactor.plan import (
    Answer,
    InvalidAnswer,
    Plan,
    Replacement,
    apply_replacements,
    make_plan,
)
from lsp_server.refactor.prompts import ModelPrompt
from lsp_server.refactor.region import Region
from lsp_server.refactor.text import split_lines
from lsp_server.refactor.validate import only_documentation_changed, validate

ATTEMPTS = 2
_DOC_ONLY = {"docstring", "typeHints"}
"""Actions that must leave the code itself unchanged (checked on the syntax tree)."""
Generate = Callable[[ModelPrompt], Answer]
ReportFn = Callable[[str, int], None]
"""``progress(message, percentage)``: the refactor feature passes one over the server's
``Progress.report`` (the class ``lsp_server.server.Progress``, hence this other name)."""


@dataclass(frozen=True)
class RefactorRequest:
    """A refactor of ``region`` in ``source`` (a document of ``language``)."""

    source: str
    language: str
    region: Region
    action: RefactorAction
    instruction: str = ""


@dataclass
class RefactorOutcome:
    """The validated new document, or why there is none."""

    new_source: str | None
    message: str
    attempts: int = 0
    rejections: list[str] = field(default_factory=list)
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when ``new_source`` holds a validated rewrite."""
        return self.new_source is not None


def run_refactor(
    request: RefactorRequest,
    generate: Generate,
    *,
    progress: ReportFn | None = None,
    tree: ast.Module | None = None,
    strategy: Strategy | None = None,
) -> RefactorOutcome:
    """Produce a validated rewrite, retrying once with the rejection reason as feedback.

    ``RegionError`` (nothing usable selected) and the generator's cancellation propagate.
    """
    began = time.perf_counter()
    plan = make_plan(
        request.source,
        request.language,
        request.region,
        request.action,
        request.instruction,
        tree,
        strategy=strategy,
    )
    if not plan.steps:
        return RefactorOutcome(None, f"No valid edit: {plan.empty_reason}.")
    rejections: list[str] = []
    feedback: str | None = None
    for attempt in range(1, ATTEMPTS + 1):
        new_source, reason = _attempt(request, plan, generate, feedback, attempt, progress)
        if new_source is not None:
            title = request.action.title.rstrip("…")
            return RefactorOutcome(
                new_source, f"{title}: done", attempt, rejections, time.perf_counter() - began
            )
        rejections.append(reason)
        feedback = reason
    message = f"No valid edit: the model's answer was rejected because {rejections[-1]}."
    return RefactorOutcome(None, message, ATTEMPTS, rejections, time.perf_counter() - began)


def _attempt(
    request: RefactorRequest,
    plan: Plan,
    generate: Generate,
    feedback: str | None,
    attempt: int,
    progress: ReportFn | None,
) -> tuple[str | None, str]:
    """One pass over the plan's steps: the new source, or None and the rejection reason."""
    replacements: list[Replacement] = []
    reasons: list[str] = []
    total = len(plan.steps) * ATTEMPTS
    for index, step in enumerate(plan.steps):
        if progress is not None:
            done = ((attempt - 1) * len(plan.steps) + index) * 100 // total
            retry = " (retry)" if attempt > 1 else ""
            progress(f"Generating {step.description}{retry}", done)
        answer = generate(step.prompt(feedback))
        try:
            replacements.append(step.apply(answer))
        except InvalidAnswer as error:
            reasons.append(str(error))
    if not replacements:
        return None, reasons[0] if reasons else "it produced nothing"
    new_source = apply_replacements(request.source, replacements)
    span, new_span = _spans(request, replacements, new_source)
    verdict = validate(request.source, new_source, request.language, span, new_span)
    if verdict.ok and request.language == "python" and request.action.kind in _DOC_ONLY:
        verdict = only_documentation_changed(
            request.source, new_source, annotations=request.action.kind == "docstring"
        )
    if not verdict.ok:
        return None, verdict.reason
    return new_source, ""


def _spans(
    request: RefactorRequest, replacements: list[Replacement], new_source: str
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The changed lines before and after: the region united with every replacement."""
    start = min([request.region.start_line] + [r.start for r in replacements])
    end = max([request.region.end_line] + [r.end for r in replacements])
    delta = len(split_lines(new_source)) - len(split_lines(request.source))
    return (start, end), (start, end + delta)
