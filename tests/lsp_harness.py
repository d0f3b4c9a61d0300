"""Real ``python -m lsp_server`` processes for end-to-end tests, and polling of their status.

Shared by the server tests (tests/server) and the refactor tests (tests/refactor); their
conftest.py files wrap it in fixtures. Importable as ``lsp_harness`` because pytest puts this
folder (holding the root conftest.py) on ``sys.path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

SERVER_ENV = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
"""Added to the server's environment: never reach a model hub, no tokenizer thread pools."""

Report = dict[str, Any]
StartServer = Callable[..., Awaitable[LanguageClient]]
"""The type of the ``start_server`` fixtures: a factory of initialized clients."""


class ServerProcesses:
    """The servers one test starts (each over stdio, rooted at ``root``), stopped together."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.clients: list[LanguageClient] = []

    async def start(
        self,
        profile: str,
        options: dict[str, Any] | None = None,
        *,
        configuration: dict[str, Any] | None = None,
        client: LanguageClient | None = None,
        wait_before_initialize: float = 0.0,
    ) -> LanguageClient:
        """Start a server and initialize it as a ``profile`` client (pytest-lsp's profiles).

        ``options`` are the initializationOptions; ``configuration`` answers the server's
        ``workspace/configuration`` requests for the ``codellama`` section; ``client`` is a test
        client with extra handlers registered (default: a plain one). The seconds
        ``initialize`` took are kept in ``client.initialize_seconds``.
        """
        client = client or make_test_lsp_client()
        if configuration is not None:
            client.set_configuration(configuration, section="codellama")
        env = {**os.environ, **SERVER_ENV}
        await client.start_io(sys.executable, "-m", "lsp_server", env=env)
        self.clients.append(client)
        if wait_before_initialize:
            await asyncio.sleep(wait_before_initialize)
        started = time.perf_counter()
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities(profile),
                root_uri=self.root.as_uri(),
                initialization_options=options or {},
            )
        )
        client.initialize_seconds = time.perf_counter() - started  # type: ignore[attr-defined]
        return client

    async def stop_all(self) -> None:
        """Shut every server down (``shutdown`` + ``exit``), then end the processes."""
        for client in self.clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.shutdown_session(), 20)
            await client.stop()


async def status(client: LanguageClient) -> Report:
    """The server's ``codellama.status`` report (sent with no arguments, like VS Code's palette)."""
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="codellama.status", arguments=[])
    )
    return dict(result)


async def poll_status(
    client: LanguageClient,
    done: Callable[[Report], bool],
    *,
    timeout: float,
    interval: float = 0.05,
    waiting_for: str = "status",
) -> Report:
    """Poll ``codellama.status`` until ``done(report)``; fail the test after ``timeout`` seconds.

    ``done`` may itself assert, to fail early on a state that will never pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        report = await status(client)
        if done(report):
            return report
        assert time.monotonic() < deadline, f"still waiting for {waiting_for}: {report}"
        await asyncio.sleep(interval)


async def wait_for_state(client: LanguageClient, *states: str, timeout: float = 120) -> Report:
    """Poll ``codellama.status`` until the model state is one of ``states``."""
    return await poll_status(
        client,
        lambda report: report["model"]["state"] in states,
        timeout=timeout,
        waiting_for=f"model state in {states}",
    )


def open_document(client: LanguageClient, uri: str, text: str, language: str = "python") -> None:
    """``textDocument/didOpen``."""
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )
