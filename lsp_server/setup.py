"""The only module that registers pygls handlers: builds the server from the FEATURES list.

Adding a feature
================

1. Write one class in ``lsp_server/features/<name>.py``::

       from lsp_server.feature import Feature, command, command_argument, lsp

       class RefactorFeature(Feature):
           name = "refactor"

           def __init__(self, server: CodeLlamaServer, host: ModelHost) -> None:
               super().__init__(server)      # services by parameter name (lsp_server.services)
               self.host = host

           @lsp(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
               code_action_kinds=[types.CodeActionKind.RefactorRewrite]))
           def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
               ...

           @command("codellama.refactor")
           async def refactor(self, *args: Any) -> Any:
               options = command_argument(args)      # {} when VS Code's palette sends []
               text = await asyncio.wrap_future(self.host.run(lambda engine: ...))

           def settings_changed(self, old, new): ...  # optional lifecycle hooks, see Feature

2. Add one line to :data:`FEATURES`: ``"lsp_server.features.refactor:RefactorFeature"``.

The hook API
============

- ``@lsp(method, options)``: the method answers that LSP request/notification. One feature
  per method; a second claim is logged as an error and ignored (the first keeps it). Methods
  owned by this module (``initialize``, ``initialized``, ``shutdown``, ``exit``, the
  ``textDocument/did*`` notifications, ``workspace/didChangeConfiguration`` and
  ``workspace/didChangeWorkspaceFolders``) cannot be claimed: override the lifecycle hooks of
  :class:`~lsp_server.feature.Feature` instead, which every feature receives (``initialize``,
  ``initialized``, ``settings_changed``, ``document_opened/changed/saved/closed``,
  ``workspace_folders_changed``, ``shutdown``, ``status``).
- ``@command(name)``: a ``workspace/executeCommand`` command, called as ``method(*arguments)``.
- Plain or ``async`` methods both work. ``asyncio.CancelledError`` (``$/cancelRequest``) passes
  through. :class:`InvalidParams` (raise it for bad arguments; ``command_argument`` does) answers
  ``InvalidParams`` with its message — say what is expected — and is logged once without a
  traceback; so does pygls' ``JsonRpcInvalidParams``. Any other exception is logged with its traceback, the request answers with an
  internal error naming the feature, and the server keeps serving. A failing hook is logged and
  the remaining features' hooks still run. A feature whose module fails to import or whose
  constructor raises is logged and left out; the others still load.
- Services are handed to features, never looked up: a feature's constructor names the ones it
  needs after ``server`` (``host``, ``model``, ``dataset``, ``completions``, ``worker``; see
  :mod:`lsp_server.services`) and gets them; a parameter that names no service leaves the
  feature out with a logged error. ``self.server`` offers the LSP side: settings, ``spawn``,
  ``show``, ``work_progress``, ``workspace_root``.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInternalError, JsonRpcInvalidParams

from lsp_server import logs
from lsp_server.feature import COMMAND_MARK, LSP_MARK, Feature, InvalidParams, command_argument
from lsp_server.server import CodeLlamaServer
from lsp_server.settings import SECTION, Settings, log_level_number, merge_settings, parse_settings
from lsp_server.text import split_lines

__all__ = ["FEATURES", "InvalidParams", "command_argument", "create_server"]

logger = logging.getLogger(__name__)

FEATURES: list[str] = [
    "lsp_server.features.model:ModelFeature",
    "lsp_server.features.completion:CompletionFeature",
    "lsp_server.features.status:StatusFeature",
    "lsp_server.features.refactor:RefactorFeature",
    "lsp_server.features.dataset:DatasetFeature",
    "lsp_server.features.finetune:FinetuneFeature",
]
"""Features as ``module:Class``; imported at start-up, each on its own (one broken import
cannot stop the others)."""

_OWNED = {
    types.INITIALIZE,
    types.INITIALIZED,
    types.SHUTDOWN,
    types.EXIT,
    types.TEXT_DOCUMENT_DID_OPEN,
    types.TEXT_DOCUMENT_DID_CHANGE,
    types.TEXT_DOCUMENT_DID_SAVE,
    types.TEXT_DOCUMENT_DID_CLOSE,
    types.WORKSPACE_DID_CHANGE_CONFIGURATION,
    types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS,
}


def create_server(features: Iterable[str | type[Feature]] | None = None) -> CodeLlamaServer:
    """Build the server with ``features`` (default :data:`FEATURES`) registered."""
    server = CodeLlamaServer()
    for spec in FEATURES if features is None else features:
        feature = _instantiate(server, spec)
        if feature is not None:
            server.features[_name(feature)] = feature
            _register_marks(server, feature)
    _register_lifecycle(server)
    return server


def _name(feature: Feature) -> str:
    return feature.name or type(feature).__name__


def _instantiate(server: CodeLlamaServer, spec: str | type[Feature]) -> Feature | None:
    try:
        if isinstance(spec, str):
            module_name, _, class_name = spec.partition(":")
            spec = getattr(importlib.import_module(module_name), class_name)
        assert isinstance(spec, type) and issubclass(spec, Feature), f"{spec!r} is not a Feature"
        return spec(server, **server.services.for_feature(spec))
    except Exception:
        logger.exception("feature %s failed to load; the server runs without it", spec)
        return None


def _register_marks(server: CodeLlamaServer, feature: Feature) -> None:
    fm = server.protocol.fm
    for attr in dir(type(feature)):
        method = getattr(feature, attr, None)
        if method is None or not callable(method):
            continue
        label = f"{_name(feature)}.{attr}"
        if (mark := getattr(method, LSP_MARK, None)) is not None:
            name, options = mark
            if name in _OWNED or name in fm.features:
                logger.error("%s cannot claim %s: already handled; ignored", label, name)
                continue
            server.feature(name, options)(_wrap_request(label, method))
        if (name := getattr(method, COMMAND_MARK, None)) is not None:
            if name in fm.commands:
                logger.error("%s cannot register command %s twice; ignored", label, name)
                continue
            server.command(name)(_wrap_command(label, method, name))


def _wrap_request(label: str, method: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(params: Any) -> Any:
        return await _call(label, method, params)

    handler.__name__ = label
    return handler


def _wrap_command(label: str, method: Callable[..., Any], command: str) -> Callable[..., Any]:
    async def handler(*args: Any) -> Any:
        try:
            return await _call(label, method, *args)
        except JsonRpcInvalidParams as exc:
            if exc.message.startswith(command):
                raise
            raise InvalidParams(f"{command}: {exc.message}") from exc

    handler.__name__ = label
    return handler


async def _call(label: str, method: Callable[..., Any], *args: Any) -> Any:
    try:
        result = method(*args)
        if inspect.isawaitable(result):
            result = await result
        return result
    except (asyncio.CancelledError, JsonRpcException):
        raise
    except Exception as exc:
        logger.exception("%s failed", label)
        raise JsonRpcInternalError(
            f"codellama {label} failed: {type(exc).__name__}: {exc}"
        ) from exc


async def _hook(server: CodeLlamaServer, hook: str, *args: Any) -> None:
    """Run lifecycle ``hook`` on every feature; one failure never stops the others."""
    for name, feature in list(server.features.items()):
        try:
            result = getattr(feature, hook)(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("feature %s failed in %s", name, hook)


def _register_lifecycle(server: CodeLlamaServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(params: types.InitializeParams) -> None:
        server.torch_at_initialize = "torch" in sys.modules
        server.loop = asyncio.get_running_loop()
        server.log_handler.loop = server.loop
        logs.attach(server.log_handler)
        server.init_options = params.initialization_options
        if params.process_id:
            watch_parent(params.process_id)
        for name, feature in server.features.items():
            try:
                feature.initialize(params)
            except Exception:
                logger.exception("feature %s failed in initialize", name)

    @server.feature(types.INITIALIZED)
    async def initialized(params: types.InitializedParams) -> None:
        await reload_settings(server)
        await _hook(server, "initialized")

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(params: types.DidChangeConfigurationParams) -> None:
        await reload_settings(server, pushed=params.settings)

    def notify(hook: str) -> Callable[[Any], Any]:
        async def handler(params: Any) -> None:
            await _hook(server, hook, params)

        return handler

    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(notify("document_opened"))
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(notify("document_changed"))
    server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))(
        notify("document_saved")
    )
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(notify("document_closed"))
    # pygls updates workspace.folders first; features (the dataset watcher) follow the change.
    server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)(
        notify("workspace_folders_changed")
    )

    @server.command(DOCUMENTS_COMMAND)
    def documents(*args: Any) -> dict[str, Any]:
        return document_state(server, command_argument(args, DOCUMENTS_COMMAND))

    @server.feature(types.SHUTDOWN)
    async def shutdown(params: Any) -> None:
        server.shutdown_requested = True
        await _hook(server, "shutdown")
        server.completions.cancel_all()
        server.worker.stop()
        await asyncio.to_thread(server.host.close)  # the managed llama.cpp server, if any

    @server.feature(types.EXIT)
    def exit_(params: Any) -> None:
        # pygls then closes stdout and raises SystemExit, but its stdin reader thread keeps
        # the interpreter alive until the client closes our stdin; don't depend on that.
        hard_exit_after(1.0, 0 if server.protocol.shutdown_received else 1)


DOCUMENTS_COMMAND = "codellama.documents"
"""Diagnostic command: what the server holds for each open document and its protocol counters
(``{"uri": ...}`` restricts it to one document). Clients use it to check document sync."""


def document_state(server: CodeLlamaServer, options: dict[str, Any]) -> dict[str, Any]:
    """The ``codellama.documents`` report: per open document its version, length (code
    points), line count (LSP line breaks), sha256 of the UTF-8 text and language id."""
    uri = options.get("uri")
    if uri is not None and not isinstance(uri, str):
        raise InvalidParams(f"{DOCUMENTS_COMMAND}: uri must be a string, got {uri!r:.80}")
    documents = {}
    for key, document in server.workspace.text_documents.items():
        if uri is not None and key != unquote(uri):
            continue
        text = document.source
        documents[document.uri] = {
            "version": document.version,
            "length": len(text),
            "lines": len(split_lines(text)) or 1,
            "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
            "languageId": document.language_id,
        }
    return {
        "positionEncoding": server.position_encoding,
        "documents": documents,
        **server.protocol_counters(),
    }


def hard_exit_after(seconds: float, code: int) -> None:
    """Terminate the process after ``seconds`` even if a thread is blocked (daemon timer)."""
    timer = threading.Timer(seconds, os._exit, args=(code,))
    timer.daemon = True
    timer.start()


def watch_parent(pid: int, interval: float = 3.0) -> None:
    """Exit when the editor process ``pid`` disappears without closing our pipes."""

    def watch() -> None:
        while True:
            time.sleep(interval)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                logger.warning("client process %d is gone; exiting", pid)
                os._exit(1)
            except PermissionError:
                pass  # exists, owned by someone else

    threading.Thread(target=watch, name="codellama-parent-watch", daemon=True).start()


async def reload_settings(server: CodeLlamaServer, *, pushed: Any = None) -> None:
    """Re-read settings (init options < pushed < ``workspace/configuration``) and notify."""
    pulled = await _pull_configuration(server)
    raw = merge_settings(server.init_options, pushed, pulled)
    settings, errors = parse_settings(raw)
    for error in errors:
        if error.unknown:
            logger.warning("%s", error)
    real = [str(e) for e in errors if not e.unknown]
    if real:
        server.show(
            "codellama: invalid settings, using defaults for them: " + "; ".join(real),
            types.MessageType.Warning,
        )
    _apply_logging(server, settings)
    old = server.settings if server.settings_read else None
    server.raw_settings, server.settings, server.settings_read = raw, settings, True
    await _hook(server, "settings_changed", old, settings)


def _apply_logging(server: CodeLlamaServer, settings: Settings) -> None:
    level = log_level_number(settings.log_level)
    server.log_handler.setLevel(level)
    file_changed = settings.log_file != server.settings.log_file or not server.settings_read
    if file_changed and (problem := logs.configure_file_log(settings.log_file, level)):
        server.show(f"codellama: {problem}; logging to the editor only", types.MessageType.Warning)
    logs.set_level(level)


async def _pull_configuration(server: CodeLlamaServer) -> Any:
    caps = server.client_capabilities
    if caps.workspace is None or not caps.workspace.configuration:
        return None
    try:
        result = await asyncio.wait_for(
            server.workspace_configuration_async(
                types.ConfigurationParams(items=[types.ConfigurationItem(section=SECTION)])
            ),
            timeout=5,
        )
    except Exception as exc:
        logger.warning("workspace/configuration failed (%s); using initializationOptions", exc)
        return None
    return result[0] if result else None
