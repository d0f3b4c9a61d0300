"""End to end through the real server process (pytest-lsp): listing, resolve, command, refusal."""

from __future__ import annotations

import ast
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import lsp_harness
import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from lsp_server.refactor.edits import apply_text_edits

URI = ""
"""The document's URI, inside the test's workspace (refactors serve workspace files only)."""
SOURCE = """\
import math


def perimeter(width, height):
    return 2 * (width + height)


def area(width, height):
    if width < 0 or height < 0:
        raise ValueError("negative size")
    return width * height


print(perimeter(1, 2), area(3, 4), math.pi)
"""
AREA_LINE = 9  # a line inside `area`
TITLES = [
    "Add docstring (function `area`)",
    "Add type hints (function `area`)",
    "Simplify (function `area`)",
    "Rename for clarity (function `area`)",
    "Refactor with instruction… (function `area`)",
]
Start = Callable[..., Awaitable[LanguageClient]]


@pytest.fixture(autouse=True)
def _workspace_uri(tmp_path: Path) -> None:
    global URI
    URI = (tmp_path / "shapes.py").as_uri()  # start_server roots the workspace at tmp_path


async def wait_ready(client: LanguageClient, timeout: float) -> None:
    def ready(report: dict[str, Any]) -> bool:
        assert report["model"]["state"] != "failed", report
        return report["model"]["state"] == "ready"

    await lsp_harness.poll_status(
        client, ready, timeout=timeout, interval=0.2, waiting_for="a ready model"
    )


def open_document(client: LanguageClient, text: str = SOURCE) -> None:
    lsp_harness.open_document(client, URI, text)


def action_params(line: int, only: list[str] | None = None) -> types.CodeActionParams:
    cursor = types.Position(line=line, character=4)
    return types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=URI),
        range=types.Range(start=cursor, end=cursor),
        context=types.CodeActionContext(diagnostics=[], only=only),
    )


async def list_actions(
    client: LanguageClient, line: int = AREA_LINE
) -> list[types.CodeAction | types.Command]:
    """The listing. (pygls' client decodes a CodeAction carrying a command as a garbled
    ``Command``; the command's content is checked in test_listing.py instead.)"""
    result = await client.text_document_code_action_async(action_params(line))
    assert result is not None
    return list(result)


def by_kind(actions: list[types.CodeAction | types.Command], title_start: str) -> types.CodeAction:
    found = next(a for a in actions if a.title.startswith(title_start))
    assert isinstance(found, types.CodeAction)
    return found


async def test_listing_is_instant_and_offers_every_action(
    start_server: Start, profile: str, broken_model: Path
) -> None:
    client = await start_server(profile, {"model": str(broken_model)})
    open_document(client)
    await wait_ready(client, 120)
    await list_actions(client)  # warm-up
    timings = []
    for _ in range(20):
        began = time.perf_counter()
        actions = await list_actions(client)
        timings.append(time.perf_counter() - began)
    assert statistics.median(timings) <= 0.010, timings
    assert [a.title for a in actions] == TITLES
    resolvable = [a for a in actions if isinstance(a, types.CodeAction)]
    assert len(resolvable) == 4
    assert {a.kind for a in resolvable} == {types.CodeActionKind.RefactorRewrite}
    assert all(a.edit is None and a.data for a in resolvable)  # the model runs on resolve only
    assert not await client.text_document_code_action_async(action_params(9, ["quickfix"]))
    assert await client.text_document_code_action_async(action_params(7, ["refactor"]))
    assert not await client.text_document_code_action_async(action_params(2))  # blank line
    # the light bulb (automatic trigger) shows them for a selection, not at a bare cursor
    automatic = action_params(AREA_LINE)
    automatic.context.trigger_kind = types.CodeActionTriggerKind.Automatic
    assert not await client.text_document_code_action_async(automatic)
    automatic.range.end = types.Position(line=AREA_LINE + 1, character=0)
    assert len(await client.text_document_code_action_async(automatic) or []) == 5


async def test_model_writing_invalid_code_gives_no_valid_edit(
    start_server: Start, broken_model: Path
) -> None:
    # Type hints and renames refuse such answers too: see test_strategies.py (scripted answers).
    client = await start_server("visual-studio-code", {"model": str(broken_model)})
    open_document(client)
    await wait_ready(client, 120)
    actions = await list_actions(client)
    for title in ("Add docstring", "Simplify"):
        resolved = await client.code_action_resolve_async(by_kind(actions, title))
        assert resolved.edit is None, title
        assert client.messages[-1].message.startswith("No valid edit"), client.messages[-1]
    cursor = {"line": AREA_LINE, "character": 4}
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="codellama.refactor",
            arguments=[
                {
                    "uri": URI,
                    "range": {"start": cursor, "end": cursor},
                    "kind": "instruction",
                    "instruction": "use early returns",
                }
            ],
        )
    )
    assert result["applied"] is False and result["message"].startswith("No valid edit")
    assert client.applied_edits == []  # type: ignore[attr-defined]
    # progress was reported for the model runs
    assert any(
        isinstance(reports[0], types.WorkDoneProgressBegin)
        and isinstance(reports[-1], types.WorkDoneProgressEnd)
        for reports in client.progress_reports.values()
    )


async def test_stale_actions_and_bad_arguments_are_refused(
    start_server: Start, broken_model: Path
) -> None:
    client = await start_server("visual-studio-code", {"model": str(broken_model)})
    open_document(client)
    actions = await list_actions(client)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text="x = 1\n" + SOURCE)],
        )
    )
    resolved = await client.code_action_resolve_async(by_kind(actions, "Add docstring"))
    assert resolved.edit is None
    assert "changed since the actions were listed" in client.messages[-1].message
    foreign = types.CodeAction(title="someone else's", kind="refactor.rewrite")
    assert await client.code_action_resolve_async(foreign) == foreign  # returned unchanged
    with pytest.raises(Exception, match="unknown refactor kind 'nope'"):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="codellama.refactor",
                arguments=[{"uri": URI, "range": [0, 0, 0, 0], "kind": "nope"}],
            )
        )


def _function(tree: ast.Module, name: str) -> ast.FunctionDef:
    return next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)


@pytest.mark.slow
async def test_bundled_model_adds_a_docstring_to_that_function_only(start_server: Start) -> None:
    client = await start_server("visual-studio-code", {"model": "bundled:smollm2-135m"})
    open_document(client)
    await wait_ready(client, 900)
    resolved = await client.code_action_resolve_async(
        by_kind(await list_actions(client), "Add docstring")
    )
    assert resolved.edit is not None, client.messages
    changes = resolved.edit.document_changes
    assert changes is not None and len(changes) == 1
    change = changes[0]
    assert isinstance(change, types.TextDocumentEdit)
    assert change.text_document.version == 1  # a stale edit is refused by the editor
    edits: list[Any] = list(change.edits)
    new = apply_text_edits(SOURCE, edits)
    tree = ast.parse(new)  # the edited file parses
    area = _function(tree, "area")
    docstring = ast.get_docstring(area)
    assert docstring and len(docstring) > 10
    old_tree = ast.parse(SOURCE)
    # only `area` changed: everything else is identical, and `area`'s code is the same
    assert ast.get_docstring(_function(tree, "perimeter")) is None
    assert ast.dump(_function(tree, "perimeter")) == ast.dump(_function(old_tree, "perimeter"))
    assert ast.dump(ast.Module(body=area.body[1:], type_ignores=[])) == ast.dump(
        ast.Module(body=_function(old_tree, "area").body, type_ignores=[])
    )
    assert all(7 <= e.range.start.line <= 11 for e in edits)  # inside `area`


LONG = (
    "def long_function(values):\n"
    + "".join(f"    total_{i} = sum(v * {i} for v in values)\n" for i in range(60))
    + "    return total_0\n"
)


async def _busy_with(client: LanguageClient, job: str, timeout: float = 60) -> None:
    def busy(report: dict[str, Any]) -> bool:
        current = report["model"].get("currentJob") or ""
        return bool((job and current.startswith(job)) or (not job and not report["model"]["busy"]))

    await lsp_harness.poll_status(client, busy, timeout=timeout, waiting_for=f"job {job!r}")


async def test_cancel_request_and_a_newer_refactor_stop_generation(
    start_server: Start, broken_model: Path
) -> None:
    client = await start_server("visual-studio-code", {"model": str(broken_model)})
    open_document(client, SOURCE + "\n\n" + LONG)
    await wait_ready(client, 120)
    long_line = SOURCE.count("\n") + 4
    simplify_long = by_kind(await list_actions(client, long_line), "Simplify")
    # $/cancelRequest: the generation (up to 1,024 tokens) stops within a step
    pending = asyncio.ensure_future(
        client.protocol.send_request_async(
            types.CODE_ACTION_RESOLVE, simplify_long, msg_id="refactor-to-cancel"
        )
    )
    await _busy_with(client, "refactor")
    began = time.perf_counter()
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="refactor-to-cancel"))
    with pytest.raises(Exception, match="cancel"):
        await pending
    await _busy_with(client, "", timeout=10)
    assert time.perf_counter() - began < 10
    # a newer resolve supersedes the running one, which answers without an edit
    first = asyncio.ensure_future(client.code_action_resolve_async(simplify_long))
    await _busy_with(client, "refactor")
    second = await client.code_action_resolve_async(
        by_kind(await list_actions(client), "Add docstring")
    )
    superseded = await asyncio.wait_for(first, 10)
    assert superseded.edit is None and second.edit is None
    ends = [
        r[-1]
        for r in client.progress_reports.values()
        if isinstance(r[-1], types.WorkDoneProgressEnd)
    ]
    assert sum(end.message == "cancelled" for end in ends) == 2, ends
