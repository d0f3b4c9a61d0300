"""The refactor actions offered as ``refactor.rewrite`` code actions, and how each is produced.

Small models copy code badly, so each action asks the model for as little as possible and this
package assembles the edit itself (every result is still validated):

- ``docstring`` (Python): ask only for the docstring sentence; we insert the quoted docstring
  under the signature (replacing an existing one). Other languages: rewrite the region.
- ``typeHints`` (Python): ask only for the ``def`` signature of each function in the region; we
  splice it in after checking the parameters are unchanged. Other languages: rewrite.
- ``rename`` (Python): ask for ``old -> new`` pairs; we rename local variables and parameters
  through the syntax tree (attributes, strings and keyword arguments of calls are untouched).
  Other languages: rewrite.
- ``simplify`` and ``instruction``: the model rewrites the whole region in a code fence.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Strategy(Enum):
    """How the model's answer becomes a rewritten region."""

    DOCSTRING_TEXT = "docstring-text"
    SIGNATURES = "signatures"
    RENAME_MAP = "rename-map"
    REWRITE = "rewrite"


@dataclass(frozen=True)
class RefactorAction:
    """One refactor action the server offers."""

    kind: str
    """Stable identifier used in code action data and the ``codellama.refactor`` command."""
    title: str
    """Title shown in the editor's code action menu."""
    python_strategy: Strategy
    """Strategy for Python files; every other language uses ``Strategy.REWRITE``."""
    goal: str
    """What the model is asked to do, phrased for the rewrite prompt."""
    needs_instruction: bool = False
    """True when the user's instruction is part of the request."""


ACTIONS: tuple[RefactorAction, ...] = (
    RefactorAction(
        "docstring",
        "Add docstring",
        Strategy.DOCSTRING_TEXT,
        "Add a concise docstring (or doc comment) to the code. Do not change anything else.",
    ),
    RefactorAction(
        "typeHints",
        "Add type hints",
        Strategy.SIGNATURES,
        "Add type annotations to the code. Do not change its behaviour.",
    ),
    RefactorAction(
        "simplify",
        "Simplify",
        Strategy.REWRITE,
        "Simplify the code: make it shorter and clearer with exactly the same behaviour.",
    ),
    RefactorAction(
        "rename",
        "Rename for clarity",
        Strategy.RENAME_MAP,
        "Rename unclear local variables and parameters to descriptive names. Change nothing else.",
    ),
    RefactorAction(
        "instruction",
        "Refactor with instruction…",
        Strategy.REWRITE,
        "Rewrite the code following this instruction: {instruction}",
        needs_instruction=True,
    ),
)

_BY_KIND = {action.kind: action for action in ACTIONS}


def action_by_kind(kind: str) -> RefactorAction:
    """Return the action named ``kind``; ``ValueError`` lists the valid kinds otherwise."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        valid = ", ".join(sorted(_BY_KIND))
        raise ValueError(f"unknown refactor kind {kind!r}; expected one of: {valid}") from None


def strategy_for(action: RefactorAction, language: str) -> Strategy:
    """The strategy used for ``action`` on a document in ``language``."""
    return action.python_strategy if language == "python" else Strategy.REWRITE
