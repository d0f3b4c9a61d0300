"""Our JSON-RPC/LSP protocol layer: pygls 2.1.1's ``LanguageServerProtocol`` with its defects
fixed once, for every handler (see docs/architecture.md, "pygls defects").

What this class changes (it only overrides methods that exist in the pinned pygls 2.1.1):

- **Every request gets an answer.** Messages arrive parsed by :mod:`lsp_server.framing`; the
  envelope is checked first (an object, ``"jsonrpc": "2.0"``, an integer or string id, a string
  method) and params are structured second. Unparseable JSON → ``ParseError`` with id null;
  batches, wrong versions and bad ids → ``InvalidRequest``; params that do not structure
  (``null``, ``[]``, a negative line, ``triggerKind: 99``) → ``InvalidParams`` naming the field.
  pygls instead logged a traceback, sent nothing and popped up ``window/showMessage``.
- **No pop-ups for protocol errors**: each bad message is logged once (a warning, no
  traceback); internal errors are logged with their traceback once.
- **Bounded bookkeeping**: pygls stores a future per handled notification and per built-in
  step in ``_request_futures`` and never removes it (2 → 2,002 entries after 1,000
  ``didChange``); every entry is now dropped when its future is done.
- **Lifecycle**: requests before ``initialize`` → ``ServerNotInitialized``; a second
  ``initialize`` → ``InvalidRequest`` (pygls re-created the workspace, dropping every open
  document); anything after ``shutdown`` but ``exit`` → ``InvalidRequest``; ``exit`` stops the
  server with code 0 after ``shutdown`` and 1 otherwise (pygls' ``sys.exit`` was swallowed, 0).
- **Documents**: the workspace is an :class:`~lsp_server.documents.LspWorkspace` (LSP line
  breaks, O(line) edits, atomic ``didChange``); the position encoding is the first one the
  client offers that LSP defines (its preference order; Neovim: utf-8, VS Code: utf-16).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Generator
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import cattrs
from lsprotocol import types
from pygls.capabilities import ServerCapabilitiesBuilder
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInternalError,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
    JsonRpcRequestCancelled,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import LanguageServerProtocol, lsp_method
from pygls.protocol.json_rpc import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
    MsgId,
)
from pygls.uris import from_fs_path

from lsp_server.documents import LspWorkspace
from lsp_server.framing import Frame
from lsp_server.text import encoding_name

if TYPE_CHECKING:
    from cattrs import Converter

__all__ = ["CodeLlamaProtocol", "valid_id"]

logger = logging.getLogger(__name__)

_ERRORS: dict[int, type[JsonRpcException]] = {
    JsonRpcParseError.CODE: JsonRpcParseError,
    JsonRpcInvalidRequest.CODE: JsonRpcInvalidRequest,
}


def valid_id(value: Any) -> bool:
    """Whether ``value`` is an LSP request id (an integer or a string; not a bool)."""
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def _describe(exc: Exception) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(exc, path="params"))
    return f"{type(exc).__name__}: {exc}"


def _normalise_language_id(params: Any) -> None:
    """A ``languageId`` that is not a string (``5``, ``null``) becomes ``""``: the document is
    still synced and completed, only without a language."""
    item = params.get("textDocument") if isinstance(params, dict) else None
    if isinstance(item, dict) and not isinstance(item.get("languageId"), str):
        logger.warning(
            "didOpen %.200s: languageId %r is not a string", item.get("uri"), item.get("languageId")
        )
        item["languageId"] = ""


class CodeLlamaProtocol(LanguageServerProtocol):
    """pygls' LSP protocol with strict message validation, bounded state and LSP lifecycle."""

    def __init__(self, server: Any, converter: Converter) -> None:
        super().__init__(server, converter)
        self.initialize_received = False
        self.shutdown_received = False
        self.exit_code: int | None = None
        """Set by ``exit`` (0 after ``shutdown``, else 1); the process exits with it."""
        self.rejected = 0
        """Messages answered with an error (or dropped) by the checks of this class."""
        self._methods: dict[MsgId, str] = {}

    # -- receiving ------------------------------------------------------------------------------

    def receive(self, frame: Frame) -> None:
        """Handle one frame from :class:`~lsp_server.framing.FrameReader`."""
        if frame.error is not None:
            error_type = _ERRORS.get(frame.error_code, JsonRpcParseError)
            self._reject(frame.error_id, error_type(frame.error))
            return
        self.receive_data(frame.data)

    def receive_data(self, data: Any) -> None:
        """Validate and dispatch one parsed JSON-RPC message."""
        if isinstance(data, list):
            error: JsonRpcException = JsonRpcInvalidRequest(
                "batch messages are not supported: send one per frame"
            )
            ids = [m["id"] for m in data if isinstance(m, dict) and valid_id(m.get("id"))]
            for msg_id in ids or [None]:
                self._reject(msg_id, error)
            return
        if not isinstance(data, dict):
            self._reject(None, JsonRpcInvalidRequest("a message must be a JSON object"))
            return
        if "method" not in data:
            self._receive_response(data)
            return
        has_id = "id" in data
        msg_id = data.get("id")
        if has_id and not valid_id(msg_id):
            self._reject(None, JsonRpcInvalidRequest("id must be an integer or a string"))
            return
        reply_to = msg_id if has_id else None
        method = data["method"]
        if data.get("jsonrpc") != self.VERSION:
            self._reject(reply_to, JsonRpcInvalidRequest('"jsonrpc" must be "2.0"'), has_id)
            return
        if not isinstance(method, str):
            self._reject(reply_to, JsonRpcInvalidRequest("method must be a string"), has_id)
            return
        params = data.get("params")
        if params is not None and not isinstance(params, dict | list):
            error = JsonRpcInvalidParams(f"{method}: params must be an object or an array")
            self._reject(reply_to, error, has_id)
            return
        if (problem := self._lifecycle_problem(method, has_id)) is not None:
            self._reject(reply_to, problem, has_id)
            return
        if method == types.TEXT_DOCUMENT_DID_OPEN:
            _normalise_language_id(params)
        default = JsonRPCRequestMessage if has_id else JsonRPCNotification
        try:
            message = self._converter.structure(data, self.get_message_type(method) or default)
        except Exception as exc:
            error = JsonRpcInvalidParams(f"invalid params for {method}: {_describe(exc)}")
            self._reject(reply_to, error, has_id)
            return
        if method == types.INITIALIZE:
            self.initialize_received = True
        elif method == types.SHUTDOWN:
            self.shutdown_received = True
        if has_id:
            self._methods[cast(MsgId, msg_id)] = method
        self.handle_message(message)

    def _lifecycle_problem(self, method: str, is_request: bool) -> JsonRpcException | None:
        """Why ``method`` may not run now (LSP lifecycle), or ``None``."""
        if method == types.EXIT:
            return None
        if method == types.INITIALIZE:
            if self.initialize_received:
                return JsonRpcInvalidRequest("initialize was already received; ignored")
            return None
        if not self.initialize_received:
            return JsonRpcServerNotInitialized(f"{method} before initialize")
        if self.shutdown_received:
            return JsonRpcInvalidRequest(f"{method} after shutdown: only exit is accepted")
        return None

    def _receive_response(self, data: dict[str, Any]) -> None:
        """A response to one of our requests; a malformed one fails that request's future."""
        msg_id: MsgId = data.get("id")  # type: ignore[assignment]  # checked next
        if not valid_id(msg_id) or data.get("jsonrpc") != self.VERSION:
            self.rejected += 1
            logger.warning("ignored malformed message without a method: %.200s", data)
            return
        if "error" in data:
            message_type: Any = types.ResponseErrorMessage
        else:
            message_type = self._result_types.pop(msg_id, None) or JsonRPCResponseMessage
        try:
            message = self._converter.structure(data, message_type)
        except Exception as exc:
            self.rejected += 1
            logger.warning("malformed response to request %s: %s", msg_id, _describe(exc))
            error = types.ResponseError(code=JsonRpcInvalidParams.CODE, message=str(exc))
            self._handle_response(msg_id, None, error)
            return
        self.handle_message(message)

    def _reject(self, msg_id: MsgId | None, error: JsonRpcException, answer: bool = True) -> None:
        """Log ``error`` once; answer it when the message was a request (id null if unknown)."""
        self.rejected += 1
        logger.warning("rejected message (id %s): %s", msg_id, error.message)
        if not answer:
            return
        if msg_id is None:
            payload = {"code": error.code, "message": error.message}
            self._send_data({"jsonrpc": self.VERSION, "id": None, "error": payload})
        else:
            self._send_response(msg_id, error=error.to_response_error())

    # -- bookkeeping pygls never cleans up ------------------------------------------------------

    def _execute_handler(
        self,
        msg_id: MsgId,
        handler: Any,
        callback: Any,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            future.add_done_callback(partial(self._forget, msg_id))

    def _forget(self, msg_id: MsgId, future: Future[Any]) -> None:
        if self._request_futures.get(msg_id) is future:
            del self._request_futures[msg_id]

    def _send_response(
        self,
        msg_id: MsgId,
        result: Any | None = None,
        error: types.ResponseError | None = None,
    ) -> None:
        self._methods.pop(msg_id, None)
        super()._send_response(msg_id, result, error)

    def _send_handler_result(self, future: Future[Any], *, msg_id: MsgId) -> None:
        """Answer a request; expected errors are logged once without a traceback."""
        self._request_futures.pop(msg_id, None)
        method = self._methods.get(msg_id, "request")
        if future.cancelled():
            cancelled = JsonRpcRequestCancelled(f'Request with id "{msg_id}" is canceled')
            self._send_response(msg_id, error=cancelled.to_response_error())
            return
        exc = future.exception()
        if exc is None:
            self._send_response(msg_id, result=future.result())
            return
        if not isinstance(exc, JsonRpcException):
            logger.error("%s (id %s) failed", method, msg_id, exc_info=exc)
            exc = JsonRpcInternalError(f"{method} failed: {type(exc).__name__}: {exc}")
        elif exc.code != JsonRpcRequestCancelled.CODE:
            logger.warning("%s (id %s): %s", method, msg_id, exc.message)
        self._send_response(msg_id, error=exc.to_response_error())

    def _check_handler_result(self, future: Future[Any]) -> None:
        """A notification handler failed: log it (pygls popped up an error message)."""
        if not future.cancelled() and (exc := future.exception()) is not None:
            logger.error("notification handler failed", exc_info=exc)

    # -- built-in methods -----------------------------------------------------------------------

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(
        self, params: types.InitializeParams
    ) -> Generator[Any, Any, types.InitializeResult]:
        """pygls' ``initialize`` with our workspace and a plain-string position encoding."""
        self._server.process_id = params.process_id
        sync_kind = self._server._text_document_sync_kind
        self.client_capabilities = params.capabilities
        encoding = encoding_name(
            ServerCapabilitiesBuilder.choose_position_encoding(params.capabilities)
        )
        root_uri = params.root_uri
        if params.root_path is not None and root_uri is None:
            root_uri = from_fs_path(params.root_path)
        self._workspace = LspWorkspace(
            root_uri, sync_kind, params.workspace_folders or [], encoding
        )
        if (user_handler := self.fm.features.get(types.INITIALIZE)) is not None:
            yield user_handler, (params,), None
        self.server_capabilities = ServerCapabilitiesBuilder(
            self.client_capabilities,
            set({**self.fm.features, **self.fm.builtin_features}.keys()),
            self.fm.feature_options,
            list(self.fm.commands.keys()),
            sync_kind,
            self._server._notebook_document_sync,
            types.PositionEncodingKind(encoding),
        ).build()
        return types.InitializeResult(
            capabilities=self.server_capabilities, server_info=self.server_info
        )

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(
        self, params: types.DidChangeTextDocumentParams
    ) -> Generator[Any, Any, None]:
        """Apply all changes of one ``didChange`` or none; features hear only applied ones."""
        workspace = cast(LspWorkspace, self.workspace)
        if not workspace.apply_did_change(params.text_document, params.content_changes):
            return
        if (user_handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield user_handler, (params,), None

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Generator[Any, Any, None]:
        """Run the user's handler, then stop serving: code 0 after ``shutdown``, else 1."""
        if (user_handler := self.fm.features.get(types.EXIT)) is not None:
            yield user_handler, args, None
        self.exit_code = 0 if self.shutdown_received else 1
        if self.exit_code:
            logger.warning("exit without shutdown: exiting with code 1")
        stop = getattr(self._server, "stop_serving", None)
        if stop is None:
            sys.exit(self.exit_code)
        stop()
