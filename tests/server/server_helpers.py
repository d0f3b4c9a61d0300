"""Helpers shared by the server tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient


async def status(client: LanguageClient) -> dict[str, Any]:
    """The server's ``codellama.status`` report (sent with no arguments, like VS Code's palette)."""
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="codellama.status", arguments=[])
    )
    return dict(result)


async def wait_for_state(
    client: LanguageClient, *states: str, timeout: float = 120
) -> dict[str, Any]:
    """Poll ``codellama.status`` until the model state is one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        report = await status(client)
        if report["model"]["state"] in states:
            return report
        assert time.monotonic() < deadline, f"state still {report['model']['state']}: {report}"
        await asyncio.sleep(0.05)


def open_document(client: LanguageClient, uri: str, text: str, language: str = "python") -> None:
    """``textDocument/didOpen``."""
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )


def inline_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    """Params of an automatic inline completion request."""
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


async def inline(client: LanguageClient, uri: str, line: int, character: int) -> str:
    """The inline completion text ("" for an empty list)."""
    result = await client.text_document_inline_completion_async(inline_params(uri, line, character))
    assert result is not None
    items = result.items if isinstance(result, types.InlineCompletionList) else result
    return items[0].insert_text if items else ""
