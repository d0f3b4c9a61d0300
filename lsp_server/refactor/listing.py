"""The ``textDocument/codeAction`` listing: instant, never touches the model.

Actions carry everything ``codeAction/resolve`` needs in ``data``; the edit itself is computed on
resolve. Clients that cannot resolve ``edit`` get a ``codellama.refactor`` command instead (the
server then applies the edit with ``workspace/applyEdit``). "Refactor with instruction…" is always
a command without an ``instruction``: the editor asks the user and adds it to the argument.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from lsprotocol import types

from lsp_server.refactor.actions import ACTIONS, RefactorAction
from lsp_server.refactor.region import Region, RegionError, Selection, select_region

COMMAND = "codellama.refactor"
KIND = types.CodeActionKind.RefactorRewrite


def wants_refactors(only: Sequence[str] | None) -> bool:
    """Whether a request filtered to ``only`` kinds accepts ``refactor.rewrite`` actions."""
    if not only:
        return True
    return any(kind == KIND or KIND.value.startswith(f"{kind}.") for kind in only)


def range_to_list(selection: Selection) -> list[int]:
    """Compact JSON form of a selection (for ``data`` and command arguments)."""
    return [
        selection.start_line,
        selection.start_character,
        selection.end_line,
        selection.end_character,
    ]


def selection_from(value: Any) -> Selection:
    """A ``Selection`` from ``[l, c, l, c]``, an LSP range dict or an lsprotocol ``Range``."""
    if isinstance(value, types.Range):
        return Selection(
            value.start.line, value.start.character, value.end.line, value.end.character
        )
    if isinstance(value, dict) and "start" in value and "end" in value:
        start, end = value["start"], value["end"]
        return Selection(
            int(start["line"]), int(start["character"]), int(end["line"]), int(end["character"])
        )
    if isinstance(value, (list, tuple)) and len(value) == 4:
        return Selection(*(int(v) for v in value))
    raise ValueError('range must be an LSP range ({"start": {"line", "character"}, "end": {...}})')


def list_actions(
    uri: str,
    version: int | None,
    source: str,
    language: str,
    selection: Selection,
    *,
    tree: ast.Module | None = None,
    resolve_edits: bool = True,
) -> list[types.CodeAction]:
    """The refactor actions for ``selection`` (empty when there is nothing to refactor)."""
    try:
        region = select_region(source, selection, language, tree)
    except RegionError:
        return []
    where = range_to_list(selection)
    return [_action(action, region, uri, version, where, resolve_edits) for action in ACTIONS]


def _action(
    action: RefactorAction,
    region: Region,
    uri: str,
    version: int | None,
    where: list[int],
    resolve_edits: bool,
) -> types.CodeAction:
    title = f"{action.title} ({region.label})"
    argument: dict[str, Any] = {"uri": uri, "range": where, "kind": action.kind, "version": version}
    if action.needs_instruction or not resolve_edits:
        command = types.Command(title=title, command=COMMAND, arguments=[argument])
        return types.CodeAction(title=title, kind=KIND, command=command)
    return types.CodeAction(title=title, kind=KIND, data=argument)
