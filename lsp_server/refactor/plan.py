"""Turn a refactor request into model steps: the strategy registry behind ``make_plan``.

Each strategy lives in its own module under ``lsp_server.refactor.strategies``; the step types
(``Step``, ``Answer``, ``Replacement`` ...) in ``lsp_server.refactor.steps``. Both are
re-exported here, the names callers have always imported from this module. See ``actions`` for
which action uses which strategy.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from lsp_server.refactor.actions import RefactorAction, Strategy, strategy_for
from lsp_server.refactor.region import Region, RegionError, parse_python
from lsp_server.refactor.steps import (
    Answer,
    InvalidAnswer,
    Plan,
    Replacement,
    Step,
    apply_replacements,
)
from lsp_server.refactor.strategies import docstring, rename, rewrite, signatures
from lsp_server.refactor.strategies.common import LINE_WIDTH, MAX_CONTEXT_LINES, MAX_TARGETS
from lsp_server.refactor.strategies.docstring import clean_docstring, format_docstring
from lsp_server.refactor.strategies.rename import parse_renames
from lsp_server.refactor.strategies.rewrite import MAX_REWRITE_LINES

__all__ = [
    "LINE_WIDTH",
    "MAX_CONTEXT_LINES",
    "MAX_REWRITE_LINES",
    "MAX_TARGETS",
    "Answer",
    "InvalidAnswer",
    "Plan",
    "Replacement",
    "Step",
    "apply_replacements",
    "clean_docstring",
    "format_docstring",
    "make_plan",
    "parse_renames",
]

PythonPlanner = Callable[[str, ast.Module, Region], Plan | None]
"""A Python strategy: ``(source, tree, region)`` → its plan, or ``None`` to fall back to rewrite."""

_PYTHON_PLANNERS: dict[Strategy, PythonPlanner] = {
    Strategy.DOCSTRING_TEXT: docstring.plan,
    Strategy.SIGNATURES: signatures.plan,
    Strategy.RENAME_MAP: rename.plan,
}


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
            plan = _PYTHON_PLANNERS[strategy](source, tree, region)
            if plan is not None:
                return plan
    return rewrite.plan(source, language, region, action, instruction)
