"""End to end through the real server process: completions, cache, bad input, cancellation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from lsprotocol import types
from pytest_lsp import LanguageClient
from server_helpers import StartServer, inline, inline_params, open_document, status, wait_for_state

CODE = "import math\n\n\ndef area(radius):\n    "


async def test_completions_cache_and_bad_input(
    start_server: StartServer, endless_model: Path, tmp_path: Path
) -> None:
    # The steered model always says something (a random one may legitimately say nothing).
    client = await start_server({"model": str(endless_model), "maxNewTokens": 8, "debounceMs": 0})
    uri = (tmp_path / "geometry.py").as_uri()
    open_document(client, uri, CODE)

    # Before the model is ready: an empty answer at once.
    started = time.perf_counter()
    assert await inline(client, uri, 4, 4) == ""
    assert time.perf_counter() - started < 1.0
    report = await wait_for_state(client, "ready")
    assert report["model"]["template"] == "starcoder" and report["model"]["device"] == "cpu"
    tokens = [t for t, reports in client.progress_reports.items() if reports]
    assert tokens and client.progress_reports[tokens[0]][-1].kind == "end"

    # Inline and list completions come from the same engine.
    shown = await inline(client, uri, 4, 4)
    assert shown
    listed = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=4, character=4),
        )
    )
    assert isinstance(listed, types.CompletionList) and listed.is_incomplete
    (item,) = listed.items
    assert item.text_edit is not None and item.text_edit.new_text == shown
    assert item.label == shown.split("\n")[0].strip()[:80]

    # Typed-through: the user types the first characters; the rest comes from the cache.
    before = (await status(client))["completions"]
    typed = shown[:2]
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=4, character=4),
                        end=types.Position(line=4, character=4),
                    ),
                    text=typed,
                )
            ],
        )
    )
    assert "\n" not in typed
    assert await inline(client, uri, 4, 4 + len(typed)) == shown[2:]
    after = (await status(client))["completions"]
    assert after["cacheHits"] == before["cacheHits"] + 1
    assert after["completions"] == before["completions"]  # the model did not run

    # Bad input: clear empty answers, and the server keeps serving.
    assert await inline(client, (tmp_path / "never-opened.py").as_uri(), 0, 0) == ""
    assert await inline(client, uri, 99, 0) == ""
    assert await inline(client, uri, 0, 500) == ""
    binary_uri = (tmp_path / "blob.py").as_uri()
    open_document(client, binary_uri, "\x00\x01\x02garbage\x00" * 100)
    assert await inline(client, binary_uri, 0, 3) == ""
    big_uri = (tmp_path / "big.py").as_uri()
    big = "x = 1\n" * (10_000_000 // 6) + CODE
    open_document(client, big_uri, big)
    lines = big.count("\n")
    started = time.perf_counter()
    await inline(client, big_uri, lines, 4)  # answers (whatever the tiny model says) ...
    assert time.perf_counter() - started < 60
    assert (await status(client))["model"]["state"] == "ready"  # ... and keeps serving

    # Commands accept no arguments (VS Code palette) or one object; unknown ones are errors.
    for arguments in ([], [{}], None):
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="codellama.status", arguments=arguments)
        )
        assert result["model"]["state"] == "ready"
    report = await status(client)
    assert report["completions"]["latencyP50Ms"] is not None
    assert report["completions"]["tokensPerSecond"] is not None
    try:
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="codellama.nope")
        )
        raise AssertionError("unknown command accepted")
    except Exception as exc:
        assert "codellama.nope" in str(exc)


async def _busy_within(client: LanguageClient, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (await status(client))["model"]["busy"]:
            return True
        await asyncio.sleep(0.02)
    return False


async def _idle_after(client: LanguageClient) -> float:
    started = time.perf_counter()
    while (await status(client))["model"]["busy"]:
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


async def test_cancel_supersede_and_debounce(
    start_server: StartServer, endless_model: Path, tmp_path: Path
) -> None:
    client = await start_server(
        {"model": str(endless_model), "maxNewTokens": 4000, "debounceMs": 0}
    )
    await wait_for_state(client, "ready")
    uri = (tmp_path / "long.py").as_uri()
    open_document(client, uri, CODE)

    # $/cancelRequest stops decoding within a step: the engine is free right away.
    pending = asyncio.ensure_future(
        client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 4, 4), msg_id="long-1"
        )
    )
    assert await _busy_within(client, 10), "generation never started"
    await asyncio.sleep(0.3)
    assert (await status(client))["model"]["busy"], "generation ended before it could be cancelled"
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="long-1"))
    assert await _idle_after(client) < 0.5
    try:
        await pending
        raise AssertionError("a cancelled request got a result")
    except Exception as exc:
        assert "cancel" in str(exc).lower()

    # A newer request for the same document supersedes the running one.
    other = tmp_path / "other.py"
    other_uri = other.as_uri()
    open_document(client, other_uri, CODE + "x")
    first = asyncio.ensure_future(inline(client, other_uri, 4, 4))
    assert await _busy_within(client, 10)
    client.protocol.notify(  # make the newer request short
        types.WORKSPACE_DID_CHANGE_CONFIGURATION,
        types.DidChangeConfigurationParams(
            settings={"codellama": {"maxNewTokens": 3, "debounceMs": 0}}
        ),
    )
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    second = await inline(client, other_uri, 4, 5)
    assert await first == ""  # superseded: empty, quickly
    assert second != ""
    assert time.perf_counter() - started < 10
    report = await status(client)
    assert report["completions"]["cancelled"] >= 2
    assert report["settings"]["maxNewTokens"] == 3

    # Debounce: keystrokes faster than debounceMs start the model once.
    client.protocol.notify(
        types.WORKSPACE_DID_CHANGE_CONFIGURATION,
        types.DidChangeConfigurationParams(
            settings={"codellama": {"maxNewTokens": 3, "debounceMs": 400}}
        ),
    )
    await asyncio.sleep(0.2)
    before = (await status(client))["completions"]["completions"]
    burst_uri = (tmp_path / "burst.py").as_uri()
    open_document(client, burst_uri, CODE + "abc")
    answers = await asyncio.gather(
        *(_delayed(client, burst_uri, 4 + i, 0.05 * i) for i in range(4))
    )
    assert answers[:3] == ["", "", ""] and answers[3] != ""
    assert (await status(client))["completions"]["completions"] == before + 1


async def _delayed(client: LanguageClient, uri: str, character: int, delay: float) -> str:
    await asyncio.sleep(delay)
    return await inline(client, uri, 4, character)
