"""The server keeps the workspace dataset in sync (``watchDataset``), end to end over stdio."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient
from server_helpers import status

from dataset import api

StartServer = Callable[..., Awaitable[LanguageClient]]


async def _dataset_status(
    client: LanguageClient, done: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        section: dict[str, Any] = (await status(client))["features"]["dataset"]
        if done(section):
            return section
        assert time.monotonic() < deadline, section
        await asyncio.sleep(0.1)


async def test_watcher_follows_edits_and_the_setting(
    start_server: StartServer, tiny_model: Path, tmp_path: Path
) -> None:
    (tmp_path / ".gitignore").write_text("ignored/\n", encoding="utf-8")
    (tmp_path / "app.py").write_text("def main():\n    return 1\n", encoding="utf-8")
    client = await start_server({"model": str(tiny_model)})

    section = await _dataset_status(client, lambda s: s["watching"])
    assert section["initialSync"]["kept"] >= 1 and section["error"] is None
    assert {r["file_path"] for r in api.load_records(tmp_path)} >= {"app.py"}

    (tmp_path / "new_module.py").write_text("VALUE = 42\n", encoding="utf-8")
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "skip.py").write_text("X = 1\n", encoding="utf-8")
    (tmp_path / "app.py").unlink()
    await _dataset_status(client, lambda s: s["updates"] >= 1)
    deadline = time.monotonic() + 30
    while True:
        paths = {r["file_path"] for r in api.load_records(tmp_path)}
        if "new_module.py" in paths and "app.py" not in paths:
            break
        assert time.monotonic() < deadline, paths
        await asyncio.sleep(0.1)
    assert "ignored/skip.py" not in paths

    client.set_configuration({"model": str(tiny_model), "watchDataset": False}, section="codellama")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await _dataset_status(client, lambda s: not s["watching"])
    (tmp_path / "later.py").write_text("LATER = 1\n", encoding="utf-8")
    await asyncio.sleep(1.0)
    assert "later.py" not in {r["file_path"] for r in api.load_records(tmp_path)}


async def test_rebuild_dataset_command(
    start_server: StartServer, tiny_model: Path, tmp_path: Path
) -> None:
    (tmp_path / "lib.py").write_text("def f(x):\n    return x * 2\n", encoding="utf-8")
    client = await start_server({"model": str(tiny_model), "watchDataset": False})
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="codellama.rebuildDataset", arguments=[])
    )
    assert result["kept"] == 1 and Path(result["dataset"]).is_file()
    section = (await status(client))["features"]["dataset"]
    assert section["watching"] is False
