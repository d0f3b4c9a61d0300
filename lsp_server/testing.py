"""A small LSP client for demos, benchmarks and scripts: start the server, open a file, complete.

    python -m lsp_server.testing examples/sample_workspace/app.py --line 10 --character 4
    python -m lsp_server.testing FILE --model bundled:smollm2-135m          # cursor at the end

From Python::

    async with CompletionClient(init_options={"model": "bundled:smollm2-135m"}) as client:
        await client.wait_ready()
        uri = await client.open("app.py")
        print(await client.inline_completion(uri, line=10, character=4))

It drives the real server process over stdio with pygls' client, answers the server's
``workspace/configuration`` and ``window/workDoneProgress/create`` requests and records
``$/progress``, ``window/showMessage`` and ``window/logMessage`` for inspection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

from lsp_server.text import units

__all__ = ["CompletionClient", "main", "server_command"]

_LANGUAGES = {".py": "python", ".js": "javascript", ".ts": "typescript", ".rs": "rust", ".go": "go"}


def server_command() -> list[str]:
    """The command that starts this server with the current interpreter."""
    return [sys.executable, "-m", "lsp_server"]


class CompletionClient:
    """An LSP client session with the codellama server (use ``async with``)."""

    def __init__(
        self,
        *,
        init_options: dict[str, Any] | None = None,
        root: str | Path | None = None,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.init_options = init_options or {}
        self.configuration: dict[str, Any] = dict(self.init_options)
        """What the client answers to ``workspace/configuration`` for section ``codellama``."""
        self.root = Path(root).resolve() if root else Path.cwd()
        self.command = command or server_command()
        self.env = env
        self.client = LanguageClient("codellama-testing", "0.1.0")
        self.progress: dict[str, list[Any]] = {}
        self.messages: list[types.ShowMessageParams] = []
        self.logs: list[types.LogMessageParams] = []
        self.initialize_seconds: float | None = None
        self._stderr: asyncio.Task[None] | None = None
        self._versions: dict[str, int] = {}
        self._register()

    def _register(self) -> None:
        client = self.client

        @client.feature(types.WORKSPACE_CONFIGURATION)
        def configuration(params: types.ConfigurationParams) -> list[Any]:
            return [
                self.configuration if item.section == "codellama" else None for item in params.items
            ]

        @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create_progress(params: types.WorkDoneProgressCreateParams) -> None:
            self.progress.setdefault(str(params.token), [])

        @client.feature(types.PROGRESS)
        def progress(params: types.ProgressParams) -> None:
            self.progress.setdefault(str(params.token), []).append(params.value)

        @client.feature(types.WINDOW_SHOW_MESSAGE)
        def show_message(params: types.ShowMessageParams) -> None:
            self.messages.append(params)

        @client.feature(types.WINDOW_LOG_MESSAGE)
        def log_message(params: types.LogMessageParams) -> None:
            self.logs.append(params)

    async def __aenter__(self) -> CompletionClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> types.InitializeResult:
        """Start the server process and complete the ``initialize`` handshake."""
        env = {**os.environ, **(self.env or {})}
        await self.client.start_io(*self.command, env=env)
        server = self.client._server
        if server is not None and server.stderr is not None:
            self._stderr = asyncio.create_task(_drain(server.stderr))
        capabilities = types.ClientCapabilities(
            workspace=types.WorkspaceClientCapabilities(configuration=True),
            window=types.WindowClientCapabilities(work_done_progress=True),
            text_document=types.TextDocumentClientCapabilities(
                inline_completion=types.InlineCompletionClientCapabilities()
            ),
        )
        started = time.perf_counter()
        result = await self.client.initialize_async(
            types.InitializeParams(
                process_id=os.getpid(),
                root_uri=from_fs_path(str(self.root)),
                capabilities=capabilities,
                initialization_options=self.init_options,
            )
        )
        self.initialize_seconds = time.perf_counter() - started
        self.client.initialized(types.InitializedParams())
        return result

    async def close(self) -> None:
        """``shutdown`` + ``exit``, then wait for the process."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.shutdown_async(None), 10)
            self.client.exit(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.stop(), 10)
        if self._stderr is not None:
            self._stderr.cancel()

    async def status(self) -> dict[str, Any]:
        """The server's ``codellama.status`` report."""
        result = await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="codellama.status", arguments=[])
        )
        return dict(result) if result is not None else {}

    async def wait_ready(self, timeout: float = 300.0) -> dict[str, Any]:
        """Poll status until the model is ready; raises with the server's error if it failed."""
        deadline = time.monotonic() + timeout
        while True:
            status = await self.status()
            state = status["model"]["state"]
            if state == "ready":
                return status
            if state == "failed":
                raise RuntimeError(f"model failed to load: {status['model']['error']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"model not ready after {timeout:.0f} s (state: {state})")
            await asyncio.sleep(0.1)

    async def wait_idle(self, timeout: float = 300.0) -> dict[str, Any]:
        """Poll status until the server runs no model job and no background prefetch (so a
        measurement starts on a quiet server); returns that status report."""
        deadline = time.monotonic() + timeout
        while True:
            report = await self.status()
            prefetch = report["completions"].get("prefetch", {})
            if not report["model"]["busy"] and not prefetch.get("active"):
                return report
            if time.monotonic() > deadline:
                raise TimeoutError("server never became idle")
            await asyncio.sleep(0.05)

    async def open(
        self, path: str | Path, text: str | None = None, language_id: str | None = None
    ) -> str:
        """``didOpen`` a file (read from disk unless ``text`` is given); returns its URI."""
        file = Path(path)
        if not file.is_absolute():
            file = self.root / file
        uri = from_fs_path(str(file)) or file.as_uri()
        content = file.read_text(encoding="utf-8") if text is None else text
        self._versions[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri,
                    language_id=language_id or _LANGUAGES.get(file.suffix, "plaintext"),
                    version=1,
                    text=content,
                )
            )
        )
        return uri

    def change(self, uri: str, text: str) -> None:
        """Replace the whole document text (``didChange`` without a range)."""
        self._versions[uri] = self._versions.get(uri, 0) + 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self._versions[uri]
                ),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )

    def inline_request(self, uri: str, line: int, character: int) -> asyncio.Future[Any]:
        """Send ``textDocument/inlineCompletion`` and return the pending future (cancellable)."""
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
        return self.client.text_document_inline_completion_async(params)  # type: ignore[return-value]

    async def inline_completion(self, uri: str, line: int, character: int) -> str:
        """The inline completion text at a position ("" when the server has none)."""
        result = await self.inline_request(uri, line, character)
        items = result.items if isinstance(result, types.InlineCompletionList) else result or []
        if not items:
            return ""
        text = items[0].insert_text
        return text if isinstance(text, str) else text.value


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines) - 1, units(lines[-1], "utf-16")  # this client offers no other encoding


async def _demo(args: argparse.Namespace) -> int:
    file = Path(args.file).resolve()
    text = file.read_text(encoding="utf-8")
    line, character = (args.line, args.character) if args.line is not None else _end_position(text)
    options: dict[str, Any] = {"debounceMs": 0}
    if args.model:
        options["model"] = args.model
    if args.adapter:
        options["adapter"] = args.adapter
    async with CompletionClient(init_options=options, root=args.root or file.parent) as client:
        status = await client.wait_ready(args.timeout)
        uri = await client.open(file, text)
        started = time.perf_counter()
        completion = await client.inline_completion(uri, line, character)
        elapsed = time.perf_counter() - started
        model = status["model"]
        print(
            f"# {model.get('model')} on {model.get('device')}; {file.name}:{line + 1}:{character + 1}"
        )
        print(f"# inline completion in {elapsed * 1000:.0f} ms:")
        print(completion if completion else "(empty)")
        if args.json:
            print(json.dumps(await client.status(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """CLI: print the inline completion the server returns at a position of a file."""
    parser = argparse.ArgumentParser(
        prog="python -m lsp_server.testing", description=__doc__.split("\n")[0]
    )
    parser.add_argument("file", help="file to open")
    parser.add_argument("--line", type=int, help="0-based line (default: end of file)")
    parser.add_argument("--character", type=int, default=0, help="0-based UTF-16 column")
    parser.add_argument("--model", help="codellama.model setting (default: the server's default)")
    parser.add_argument("--adapter", help="codellama.adapter setting")
    parser.add_argument("--root", help="workspace root (default: the file's directory)")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the model"
    )
    parser.add_argument("--json", action="store_true", help="also print codellama.status")
    return asyncio.run(_demo(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
