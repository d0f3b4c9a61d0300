"""The language server object: pygls' ``LanguageServer`` plus the services features share.

Features receive this object as ``self.server``. What it offers them:

- ``settings`` (current :class:`~lsp_server.settings.Settings`), ``raw_settings`` (the merged
  client JSON, for feature-specific keys);
- ``services`` (:class:`~lsp_server.services.Services`): model host, model service, dataset
  service, completion service, created once here; features receive the ones they name in their
  constructor (``host``/``completions``/``worker`` stay readable here for the registrar);
- ``spawn(coro)``: start a background task whose reference is kept and whose failure is logged;
- ``show(message, kind)`` / ``call_threadsafe(fn, ...)``: safe from any thread;
- ``work_progress(title)``: server-initiated ``$/progress`` usable from any thread;
- ``workspace_root``: the first workspace folder (or root URI) as a ``Path``, if any;
- ``position_encoding``: the negotiated encoding (``"utf-8"``/``"utf-16"``/``"utf-32"``), for
  every position the server converts or sends (:mod:`lsp_server.text` takes it).

Transport: ``start_io``/``start_tcp`` read through :mod:`lsp_server.framing` (resynchronising,
size-capped) into :class:`~lsp_server.protocol.CodeLlamaProtocol` (pygls' protocol with its
defects fixed); ``exit_code`` is what the process should exit with.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from lsprotocol import types
from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from lsp_server import __version__
from lsp_server.framing import ChunkQueue, FrameReader, read_stream_into, start_reader_thread
from lsp_server.logs import EditorLogHandler
from lsp_server.protocol import CodeLlamaProtocol
from lsp_server.services import Services
from lsp_server.settings import Settings
from lsp_server.text import encoding_name

if TYPE_CHECKING:
    from lsp_server.completion_service import CompletionService
    from lsp_server.feature import Feature
    from lsp_server.model_host import ModelHost
    from lsp_server.worker import ModelWorker

__all__ = ["CodeLlamaServer", "Progress"]

logger = logging.getLogger(__name__)
_tokens = itertools.count(1)


class Progress:
    """A server-initiated work-done progress; methods are safe to call from any thread.

    Without client support for ``window/workDoneProgress`` the updates go to the log only.
    """

    def __init__(self, server: CodeLlamaServer, title: str, *, cancellable: bool = False) -> None:
        self.server = server
        self.title = title
        self.cancellable = cancellable
        self.token: str | None = None
        self.cancelled = threading.Event()
        """Set when the user cancels the progress in the editor (``cancellable=True``)."""

    async def begin(self, message: str | None = None) -> Progress:
        """Create the token on the client and send ``begin`` (call on the event loop)."""
        caps = self.server.client_capabilities
        if caps.window is not None and caps.window.work_done_progress:
            token = f"codellama-{next(_tokens)}"
            try:
                await asyncio.wait_for(self.server.work_done_progress.create_async(token), 5)
            except Exception as exc:
                logger.info("client refused progress token %s: %s", token, exc)
            else:
                self.token = token
                future = self.server.work_done_progress.tokens.get(token)
                if future is not None:
                    future.add_done_callback(
                        lambda f: self.cancelled.set() if f.cancelled() else None
                    )
                self.server.work_done_progress.begin(
                    token,
                    types.WorkDoneProgressBegin(
                        title=self.title,
                        message=message,
                        percentage=0,
                        cancellable=self.cancellable,
                    ),
                )
        logger.info("%s: %s", self.title, message or "started")
        return self

    def report(self, message: str, done: int | None = None, total: int | None = None) -> None:
        """Send a ``report`` (percentage when ``total`` is known)."""
        logger.info("%s: %s", self.title, message)
        if self.token is None:
            return
        percentage = int(100 * done / total) if done is not None and total else None
        value = types.WorkDoneProgressReport(message=message, percentage=percentage)
        self.server.call_threadsafe(self.server.work_done_progress.report, self.token, value)

    def end(self, message: str) -> None:
        """Send ``end``."""
        logger.info("%s: %s", self.title, message)
        if self.token is None:
            return
        value = types.WorkDoneProgressEnd(message=message)
        self.server.call_threadsafe(self._end, self.token, value)

    def _end(self, token: str, value: types.WorkDoneProgressEnd) -> None:
        progress = self.server.work_done_progress
        progress.end(token, value)
        progress.tokens.pop(token, None)  # pygls keeps every token forever


class CodeLlamaServer(LanguageServer):
    """pygls server holding the shared services; handlers are registered by ``setup.py``."""

    protocol: CodeLlamaProtocol

    def __init__(self) -> None:
        super().__init__("codellama-lsp", __version__, protocol_cls=CodeLlamaProtocol)
        self.settings = Settings()
        self.raw_settings: dict[str, Any] = {}
        self.torch_at_initialize: bool | None = None
        """Whether torch was already imported when ``initialize`` arrived (it must not be)."""
        self.shutdown_requested = False
        self.settings_read = False
        """True once settings were read from the client (after ``initialized``)."""
        self.init_options: Any = None
        self.services = Services.create(self)
        self.features: dict[str, Feature] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.log_handler = EditorLogHandler(self.window_log_message)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.frame_reader: FrameReader | None = None

    @property
    def worker(self) -> ModelWorker:
        """The model worker thread (:attr:`services`)."""
        return self.services.worker

    @property
    def host(self) -> ModelHost:
        """The model host (:attr:`services`)."""
        return self.services.host

    @property
    def completions(self) -> CompletionService:
        """The completion service (:attr:`services`)."""
        return self.services.completions

    # -- transport -----------------------------------------------------------------------------

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        """Serve one client over stdin/stdout until ``exit`` or end of input."""
        self._stop_event = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        source = stdin or sys.stdin.buffer

        async def serve() -> None:
            chunks = ChunkQueue()
            start_reader_thread(source, chunks)
            await self.serve(FrameReader(chunks))

        self._run(serve)

    def protocol_counters(self) -> dict[str, int]:
        """Bookkeeping sizes and error counts (bounded sizes show nothing leaks per message)."""
        reader = self.frame_reader
        return {
            "pendingFutures": len(self.protocol._request_futures),
            "inFlightRequests": len(self.protocol._methods),
            "progressTokens": len(self.protocol.progress.tokens),
            "rejectedMessages": self.protocol.rejected,
            "framingErrors": reader.framing_errors if reader is not None else 0,
        }

    def start_tcp(self, host: str, port: int) -> None:
        """Serve the first client that connects to ``host:port`` (for debugging)."""
        self._stop_event = threading.Event()

        async def serve() -> None:
            done = asyncio.Event()

            async def connection(reader: asyncio.StreamReader, writer: Any) -> None:
                self.protocol.set_writer(writer)
                chunks = ChunkQueue()
                feeder = asyncio.ensure_future(read_stream_into(reader, chunks))
                try:
                    await self.serve(FrameReader(chunks))
                finally:
                    feeder.cancel()
                    done.set()

            tcp = await asyncio.start_server(connection, host, port)
            logger.info("serving on %s:%s", host, port)
            async with tcp:
                await done.wait()

        self._run(serve)

    def _run(self, serve: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            asyncio.run(serve())
        except BrokenPipeError:
            logger.error("the connection to the client is lost; shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.host.close()  # no engine process outlives us (also without LSP shutdown)
            self.shutdown()

    async def serve(self, reader: FrameReader) -> None:
        """Dispatch the frames of ``reader`` until ``exit`` or the end of the stream."""
        self.frame_reader = reader
        stop = self._stop_event
        while stop is None or not stop.is_set():
            frame = await reader.next_frame()
            if frame is None:
                if self.protocol.exit_code is None:
                    logger.info("the client closed the connection")
                break
            self.protocol.receive(frame)
            await asyncio.sleep(0)  # let handlers run between pipelined messages

    def stop_serving(self) -> None:
        """Stop reading messages (``exit``); the serve loop ends after the current one."""
        if self._stop_event is not None:
            self._stop_event.set()

    @property
    def exit_code(self) -> int:
        """0 after ``shutdown`` + ``exit`` (or end of input after ``shutdown``), else 1."""
        code = self.protocol.exit_code
        if code is None:
            code = 0 if self.protocol.shutdown_received else 1
        return code

    def report_server_error(self, error: Exception, source: Any) -> None:
        """pygls' out-of-band error report: log it; never pop up a message for a protocol
        error (features show what users must see through :meth:`show`)."""
        logger.error("%s: %s", getattr(source, "__name__", source), error)

    # -- helpers for features ----------------------------------------------------------------

    @property
    def position_encoding(self) -> str:
        """The negotiated position encoding: ``"utf-8"``, ``"utf-16"`` or ``"utf-32"``."""
        try:
            return encoding_name(self.workspace.position_encoding)
        except RuntimeError:  # before initialize
            return "utf-16"

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str = "task") -> asyncio.Task[Any]:
        """Run ``coro`` in the background; keep a reference; log (not raise) its failure."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and (exc := t.exception()) is not None:
                logger.error("background task %s failed", name, exc_info=exc)

        task.add_done_callback(done)
        return task

    def call_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on the event loop thread (from any thread; no-op once closed)."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        if _on_loop(loop):
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def show(self, message: str, kind: types.MessageType = types.MessageType.Info) -> None:
        """``window/showMessage`` from any thread (also logged)."""
        logger.log(_LEVELS.get(kind, logging.INFO), "%s", message)
        self.call_threadsafe(
            self.window_show_message, types.ShowMessageParams(type=kind, message=message)
        )

    def work_progress(self, title: str, *, cancellable: bool = False) -> Progress:
        """A new server-initiated progress; ``await progress.begin()`` on the event loop."""
        return Progress(self, title, cancellable=cancellable)

    @property
    def workspace_root(self) -> Path | None:
        """The first workspace folder or the root URI as a local path, if any."""
        try:
            workspace = self.workspace
        except RuntimeError:
            return None
        folders = list(workspace.folders.values())
        uri = folders[0].uri if folders else workspace.root_uri
        path = to_fs_path(uri) if uri else None
        return Path(path) if path else None


_LEVELS = {
    types.MessageType.Error: logging.ERROR,
    types.MessageType.Warning: logging.WARNING,
    types.MessageType.Info: logging.INFO,
}


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
