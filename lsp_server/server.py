"""The language server object: pygls' ``LanguageServer`` plus the services features share.

Features receive this object as ``self.server``. What it offers them:

- ``settings`` (current :class:`~lsp_server.settings.Settings`), ``raw_settings`` (the merged
  client JSON, for feature-specific keys);
- ``host`` (:class:`~lsp_server.model_host.ModelHost`: the model, its load state and
  ``host.run(fn)`` to run ``fn(engine)`` on the model worker thread);
- ``completions`` (:class:`~lsp_server.completion_service.CompletionService`);
- ``spawn(coro)``: start a background task whose reference is kept and whose failure is logged;
- ``show(message, kind)`` / ``call_threadsafe(fn, ...)``: safe from any thread;
- ``work_progress(title)``: server-initiated ``$/progress`` usable from any thread;
- ``workspace_root``: the first workspace folder (or root URI) as a ``Path``, if any.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from lsp_server import __version__
from lsp_server.completion_service import CompletionService
from lsp_server.logs import EditorLogHandler
from lsp_server.model_host import ModelHost
from lsp_server.settings import Settings
from lsp_server.worker import ModelWorker

if TYPE_CHECKING:
    from lsp_server.feature import Feature

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
        self.server.call_threadsafe(self.server.work_done_progress.end, self.token, value)


class CodeLlamaServer(LanguageServer):
    """pygls server holding the shared services; handlers are registered by ``setup.py``."""

    def __init__(self) -> None:
        super().__init__("codellama-lsp", __version__)
        self.settings = Settings()
        self.raw_settings: dict[str, Any] = {}
        self.torch_at_initialize: bool | None = None
        """Whether torch was already imported when ``initialize`` arrived (it must not be)."""
        self.shutdown_requested = False
        self.settings_read = False
        """True once settings were read from the client (after ``initialized``)."""
        self.init_options: Any = None
        self.worker = ModelWorker()
        self.host = ModelHost(self.worker)
        self.completions = CompletionService(self.host)
        self.features: dict[str, Feature] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.log_handler = EditorLogHandler(self.window_log_message)
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- helpers for features ----------------------------------------------------------------

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
