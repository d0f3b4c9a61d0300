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
from lsp_server.refactor.region import Region, RegionError, Selection, local_tree, select_region

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
    """A ``Selection`` from ``[l, c, l, c]``, an LSP range dict or an lsprotocol ``Range``.

    ``ValueError`` (saying what is expected) for anything else: non-integers, negative or
    out-of-range numbers, an end before the start.
    """
    numbers: list[Any] | None = None
    if isinstance(value, types.Range):
        numbers = [value.start.line, value.start.character, value.end.line, value.end.character]
    elif isinstance(value, dict) and isinstance(value.get("start"), dict):
        start, end = value["start"], value.get("end")
        if isinstance(end, dict):
            numbers = [start.get("line"), start.get("character")]
            numbers += [end.get("line"), end.get("character")]
    elif isinstance(value, (list, tuple)) and len(value) == 4:
        numbers = list(value)
    if numbers is None or not all(_position_number(n) for n in numbers):
        raise ValueError(_RANGE_EXPECTED)
    selection = Selection(*numbers)
    if (selection.end_line, selection.end_character) < (
        selection.start_line,
        selection.start_character,
    ):
        raise ValueError(_RANGE_EXPECTED + ", its end not before its start")
    return selection


_RANGE_EXPECTED = (
    'range must be an LSP range ({"start": {"line", "character"}, "end": {...}} or '
    "[line, character, line, character]) of integers from 0 to 2^31-1"
)


def _position_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31


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
    """The refactor actions for ``selection`` (empty when there is nothing to refactor).

    Runs on the event loop at every cursor move: without ``tree`` only the top-level
    statements around the selection are parsed (:func:`local_tree`), never the whole file.
    """
    if tree is None and language == "python":
        tree = local_tree(source, selection.start_line, selection.end_line)
    try:
        region = select_region(source, selection, language, tree, parse=False)
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


def disabled_actions(reason: str) -> list[types.CodeAction]:
    """One greyed-out action saying why there are no refactors here (clients that support
    ``disabled`` show the reason instead of an empty menu)."""
    title = "Refactor with CodeLlama"
    return [types.CodeAction(title=title, kind=KIND, disabled=types.CodeActionDisabled(reason))]
