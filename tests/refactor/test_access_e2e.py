"""Through the real server: refactors see only open workspace documents, a huge document gets a
reason instead of freezing the server, and the own refactor model is freed when unset."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import lsp_harness
import psutil
import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import LanguageClient, client_capabilities

Start = Any

SMALL = "def area(width, height):\n    return width * height\n"


def params(uri: str, line: int = 0) -> types.CodeActionParams:
    cursor = types.Position(line=line, character=4)
    return types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=cursor, end=cursor),
        context=types.CodeActionContext(diagnostics=[]),
    )


async def refactor_command(client: LanguageClient, uri: str) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(
            command="codellama.refactor",
            arguments=[{"uri": uri, "range": [0, 4, 0, 4], "kind": "docstring"}],
        )
    )


async def test_only_open_workspace_documents_are_refactored(
    start_server: Start, profile: str, broken_model: Path, tmp_path: Path
) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "secret.py").write_text("def leak_me():\n    return 'hunter2'\n")
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)  # reading it would block the server until someone writes
    on_disk = tmp_path / "on_disk.py"
    on_disk.write_text(SMALL)  # a workspace file, but the client never opened it
    client = await start_server(profile, {"model": str(broken_model)})
    escaping = f"{tmp_path.as_uri()}/../{outside.name}/secret.py"
    not_open = [fifo.as_uri(), "file:///dev/zero", "file:///etc/passwd", on_disk.as_uri(), escaping]
    for uri in not_open:
        began = time.perf_counter()
        assert not await client.text_document_code_action_async(params(uri)), uri
        assert time.perf_counter() - began < 2, uri
        with pytest.raises(JsonRpcInvalidParams, match="not open in the editor"):
            await refactor_command(client, uri)
    # Open in the editor but outside the workspace: still nothing, and no name in any title.
    lsp_harness.open_document(client, escaping, (outside / "secret.py").read_text())
    lsp_harness.open_document(client, "file:///etc/passwd", "root = 'x:0:0'\n")
    for uri in (escaping, "file:///etc/passwd"):
        assert not await client.text_document_code_action_async(params(uri)), uri
        with pytest.raises(JsonRpcInvalidParams, match="outside the workspace"):
            await refactor_command(client, uri)
    # An open workspace document gets its actions.
    inside = (tmp_path / "shapes.py").as_uri()
    lsp_harness.open_document(client, inside, SMALL)
    actions = await client.text_document_code_action_async(params(inside))
    assert actions and all("area" in a.title for a in actions)
    report = await lsp_harness.status(client)
    assert report["features"]["refactor"]["lastLatencySeconds"] is None  # the model never ran
    assert not any("leak_me" in m.message or "hunter2" in m.message for m in client.messages)


async def test_huge_document_gets_a_reason_and_never_stalls_the_server(
    start_server: Start, profile: str, broken_model: Path, tmp_path: Path
) -> None:
    client = await start_server(profile, {"model": str(broken_model)})
    pid = (await lsp_harness.wait_for_state(client, "ready"))["server"]["pid"]  # load is done
    big = "def f_0(x):\n    return x + 1\n\n" * (5_000_000 // 31)  # the 5 MB file
    uri = (tmp_path / "big.py").as_uri()
    lsp_harness.open_document(client, uri, big)
    await lsp_harness.status(client)  # the didOpen is processed
    rss_before = psutil.Process(pid).memory_info().rss
    shows_disabled = client_capabilities(profile).text_document.code_action.disabled_support
    for line in (10, 80_000, 160_000):
        pending = asyncio.ensure_future(client.text_document_code_action_async(params(uri, line)))
        began = time.perf_counter()
        await lsp_harness.status(client)
        waited = time.perf_counter() - began
        assert waited < 1.0, f"status waited {waited:.2f} s"  # the loop is not busy parsing
        actions = await asyncio.wait_for(pending, 5)
        if shows_disabled:
            assert actions and len(actions) == 1
            action = actions[0]
            assert isinstance(action, types.CodeAction) and action.disabled is not None
            assert "characters" in action.disabled.reason
        else:
            assert not actions
    with pytest.raises(JsonRpcInvalidParams, match="refactors work on documents of up to"):
        await refactor_command(client, uri)
    grown = psutil.Process(pid).memory_info().rss - rss_before
    assert grown < 100 * 2**20, f"RSS grew by {grown / 2**20:.0f} MB"  # no tree kept (was ~1 GB)
    # Under the limit, a long file still lists fast (only the statements around the cursor).
    medium = "".join(f"def f_{i}(x):\n    return x + {i}\n\n" for i in range(5_000))
    medium_uri = (tmp_path / "medium.py").as_uri()
    lsp_harness.open_document(client, medium_uri, medium)
    await lsp_harness.status(client)
    timings = []
    for _ in range(5):
        began = time.perf_counter()
        actions = await client.text_document_code_action_async(params(medium_uri, 12_001))
        timings.append(time.perf_counter() - began)
    assert actions and "f_4000" in actions[0].title
    assert min(timings) < 0.1, timings


async def test_refactor_model_is_freed_when_the_setting_is_cleared(
    start_server: Start, broken_model: Path, other_chat_model: Path, tmp_path: Path
) -> None:
    options = {"model": str(broken_model), "refactorModel": str(other_chat_model)}
    client = await start_server("visual-studio-code", options)
    await lsp_harness.wait_for_state(client, "ready")
    uri = (tmp_path / "shapes.py").as_uri()
    lsp_harness.open_document(client, uri, SMALL)
    actions = await client.text_document_code_action_async(params(uri))
    assert actions
    docstring = next(a for a in actions if a.title.startswith("Add docstring"))
    assert isinstance(docstring, types.CodeAction)
    await client.code_action_resolve_async(docstring)  # loads the refactor model, then refuses
    report = await lsp_harness.status(client)
    assert report["features"]["refactor"]["refactorModel"] == str(other_chat_model)
    client.set_configuration({**options, "refactorModel": None}, section="codellama")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await lsp_harness.poll_status(
        client,
        lambda r: r["features"]["refactor"]["refactorModel"] == "(completion model)",
        timeout=30,
        waiting_for="the refactor model to be freed",
    )
