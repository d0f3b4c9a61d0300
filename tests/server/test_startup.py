"""Start-up: ``initialize`` is answered fast and before torch is imported; settings errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types
from server_helpers import StartServer, status, wait_for_state


async def test_initialize_is_answered_before_torch_is_imported(
    start_server: StartServer, tiny_model: Path
) -> None:
    # Give the process time to import pygls, so the figure is the request itself.
    # Timing on shared CI machines is noise; bench/lsp_bench.py measures the 300 ms budget.
    # Here the invariant behind it: initialize is answered before torch is imported.
    client = await start_server({"model": str(tiny_model)})
    report = await status(client)
    assert report["server"]["torchAtInitialize"] is False


async def test_capabilities_advertise_completions_and_commands(
    start_server: StartServer, tiny_model: Path
) -> None:
    client = await start_server({"model": str(tiny_model)})
    report = await status(client)
    assert report["server"]["version"]
    # pytest-lsp keeps the initialize result on the protocol; check what clients see instead:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri="file:///nowhere.py"),
            position=types.Position(line=0, character=0),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
        )
    )
    assert result is not None and list(result.items) == []


async def test_model_that_fails_to_load_is_reported(
    start_server: StartServer, tmp_path: Path
) -> None:
    client = await start_server({"model": str(tmp_path / "no-such-model")})
    report = await wait_for_state(client, "failed")
    assert "no-such-model" in report["model"]["error"]
    errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
    assert any("no-such-model" in m for m in errors), client.messages
    # The server keeps serving.
    assert (await status(client))["model"]["state"] == "failed"


async def test_invalid_settings_are_named_then_defaults_used(
    start_server: StartServer, tiny_model: Path
) -> None:
    client = await start_server(
        {"model": str(tiny_model), "maxNewTokens": "lots", "device": "tpu", "debounceMs": 10},
        configuration={"contextTokens": 5},
    )
    for _ in range(200):  # settings are read after `initialized`, asynchronously
        if client.messages:
            break
        await asyncio.sleep(0.05)
    report = await status(client)
    settings = report["settings"]
    assert settings["maxNewTokens"] == 64 and settings["device"] == "auto"
    assert settings["contextTokens"] == 1536 and settings["debounceMs"] == 10
    warnings = " ".join(m.message for m in client.messages if m.type == types.MessageType.Warning)
    for name in ("codellama.maxNewTokens", "codellama.device", "codellama.contextTokens"):
        assert name in warnings, warnings
    assert "between 64 and 32768" in warnings


async def test_configuration_change_reloads_the_model(
    start_server: StartServer, tiny_model: Path, endless_model: Path
) -> None:
    client = await start_server({"model": str(tiny_model)})
    await wait_for_state(client, "ready")
    client.set_configuration({"model": str(endless_model), "maxNewTokens": 5}, section="codellama")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    report = await wait_for_state(client, "ready", "failed")
    for _ in range(600):
        if report["model"]["model"] == str(endless_model) and report["model"]["state"] == "ready":
            break
        report = await status(client)
    assert report["model"]["model"] == str(endless_model)
    assert report["settings"]["maxNewTokens"] == 5
    for _ in range(200):  # one background load with progress per model
        ended = [
            reports[-1]
            for reports in client.progress_reports.values()
            if reports[0].title == "codellama: loading model" and reports[-1].kind == "end"
        ]
        if len(ended) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(ended) == 2, client.progress_reports

    # useAdapter with a path that is no adapter: a clear error, the model keeps serving.
    try:
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="codellama.useAdapter", arguments=[{"path": "/no/such/adapter"}]
            )
        )
        raise AssertionError("bad adapter accepted")
    except Exception as exc:
        assert "/no/such/adapter" in str(exc) and "not a directory" in str(exc)
    assert (await status(client))["model"]["state"] == "ready"


def test_server_exits_when_the_client_disappears() -> None:
    """Closing stdin (the editor crashed) ends the server process; nothing keeps it alive."""
    import json
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "lsp_server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"processId": None, "capabilities": {}},
        }
    ).encode()
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    process.stdin.flush()
    header = process.stdout.readline()
    assert header.startswith(b"Content-Length")
    process.stdin.close()
    assert process.wait(timeout=60) is not None
