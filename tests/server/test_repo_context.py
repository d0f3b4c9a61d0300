"""Repository context end to end: the real server, the real watcher, a tiny model.

A tiny random model cannot *use* a helper defined in another file, so these tests assert what
is observable and decides it: the prompt the engine receives (logged at debug level) holds the
other file's helper and nothing from ignored, secret or the current file, and the index follows
create / modify / delete / rename through the dataset watcher. Whether the model then writes
the right call is the quality benchmark's claim (``bench/quality.py`` rows with context on/off).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_lsp import LanguageClient
from server_helpers import StartServer, inline, open_document, status, wait_for_state

HELPER = (
    "def frobnicate_widget(widget, scale=2):\n"
    '    """Scale a widget by its factor."""\n'
    "    return widget.size * scale\n"
)
MAIN = "from helpers import frobnicate_widget\n\n\ndef run(widget):\n    return frobnicate_widget("
SECRET_KEY = "AKIAIOSFODNN7EXAMPLE"

pytestmark = pytest.mark.parametrize("profile", ["visual-studio-code"])


async def _repo_status(
    client: LanguageClient, done: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        section: dict[str, Any] = (await status(client))["features"]["dataset"]["repoContext"]
        if done(section):
            return section
        assert time.monotonic() < deadline, section
        await asyncio.sleep(0.1)


async def _snippets(client: LanguageClient, uri: str, line: int, col: int) -> list[dict[str, Any]]:
    await inline(client, uri, line, col)
    last = (await status(client))["features"]["dataset"]["repoContext"]["lastPrompt"]
    return list(last["snippets"]) if last else []


def _workspace(root: Path) -> None:
    (root / ".gitignore").write_text("ignored/\n", encoding="utf-8")
    (root / "helpers.py").write_text(HELPER, encoding="utf-8")
    (root / "main.py").write_text(MAIN + ")\n", encoding="utf-8")
    (root / "ignored").mkdir()
    (root / "ignored" / "shadow.py").write_text(
        "def frobnicate_widget(w):\n    return 'IGNORED COPY'\n", encoding="utf-8"
    )
    (root / "settings_local.py").write_text(
        f'AWS_ACCESS_KEY_ID = "{SECRET_KEY}"\ndef frobnicate_config(widget):\n    return 1\n',
        encoding="utf-8",
    )


async def test_the_prompt_holds_the_helper_from_another_file(
    start_server: StartServer, tiny_model: Path, tmp_path: Path
) -> None:
    _workspace(tmp_path)
    log = tmp_path / "server.log"
    client = await start_server(
        {
            "model": str(tiny_model), "maxNewTokens": 4, "debounceMs": 0, "logLevel": "debug",
            "logFile": str(log), "contextTokens": 512, "repoContextTokens": 200,
        }
    )  # fmt: skip
    await wait_for_state(client, "ready")
    section = await _repo_status(client, lambda s: (s["index"] or {}).get("files", 0) >= 2)
    assert section["enabled"] is True
    uri = (tmp_path / "main.py").as_uri()
    open_document(client, uri, MAIN)
    snippets = await _snippets(client, uri, 4, len("    return frobnicate_widget("))
    assert snippets and snippets[0]["path"] == "helpers.py"
    assert snippets[0]["reason"] == "definition" and snippets[0]["name"] == "frobnicate_widget"
    assert all(s["path"] not in {"main.py", "ignored/shadow.py"} for s in snippets)

    deadline = time.monotonic() + 20
    while "prompt for main.py" not in (text := log.read_text(encoding="utf-8")):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    prompt = text[text.index("prompt for main.py") :]
    assert "# path: helpers.py\ndef frobnicate_widget(widget, scale=2):" in prompt
    assert prompt.index("# path: helpers.py") < prompt.index("# path: main.py")  # context first
    assert "IGNORED COPY" not in prompt and SECRET_KEY not in prompt

    # Off: the same request sends no other file.
    client.set_configuration(
        {"model": str(tiny_model), "repoContext": False, "logLevel": "debug", "logFile": str(log)},
        section="codellama",
    )
    from lsprotocol import types

    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await _repo_status(client, lambda s: s["enabled"] is False)
    before = (await status(client))["features"]["dataset"]["repoContext"]["retrievals"]
    await inline(client, uri, 4, 3)
    after = (await status(client))["features"]["dataset"]["repoContext"]["retrievals"]
    assert after == before


async def test_the_index_follows_the_watcher(
    start_server: StartServer, tiny_model: Path, tmp_path: Path
) -> None:
    _workspace(tmp_path)
    client = await start_server({"model": str(tiny_model), "maxNewTokens": 2, "debounceMs": 0})
    await wait_for_state(client, "ready")
    start = await _repo_status(client, lambda s: (s["index"] or {}).get("files", 0) >= 2)
    uri = (tmp_path / "main.py").as_uri()

    async def sources(text: str) -> list[tuple[str, str]]:
        open_document(client, uri, text)  # same block: only the batch invalidates the cache
        lines = text.split("\n")
        found = await _snippets(client, uri, len(lines) - 1, len(lines[-1]))
        return [(s["path"], s.get("name", "")) for s in found]

    async def settled(check: Callable[[list[tuple[str, str]]], bool], text: str) -> None:
        deadline = time.monotonic() + 30
        while not check(got := await sources(text)):
            assert time.monotonic() < deadline, got
            await asyncio.sleep(0.2)

    # modify: the new name is found, where it is now defined
    (tmp_path / "helpers.py").write_text(HELPER.replace("frobnicate", "polish"), encoding="utf-8")
    polish = MAIN.replace("frobnicate", "polish")
    await settled(lambda got: ("helpers.py", "polish_widget") in got, polish)
    # create
    (tmp_path / "extra.py").write_text("def sparkle_widget(w):\n    return w\n", encoding="utf-8")
    sparkle = "def run(widget):\n    return sparkle_widget("
    await settled(lambda got: ("extra.py", "sparkle_widget") in got, sparkle)
    # rename: the old path leaves the index, the new one enters it
    (tmp_path / "extra.py").rename(tmp_path / "moved.py")
    await settled(lambda got: got[:1] == [("moved.py", "sparkle_widget")], sparkle)
    # delete
    (tmp_path / "moved.py").unlink()
    await settled(lambda got: all(p not in {"moved.py", "extra.py"} for p, _ in got), sparkle)
    files = (await _repo_status(client, lambda s: True))["index"]["files"]
    assert files == start["index"]["files"]  # created, renamed, deleted: back where it was
