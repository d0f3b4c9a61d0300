"""Base class and decorators for server features (see ``lsp_server/setup.py`` for the hook API).

A feature is a class with optional lifecycle hooks (methods of :class:`Feature`, overridden as
needed) plus methods marked with :func:`lsp` (an LSP request or notification this feature
answers) or :func:`command` (a ``workspace/executeCommand`` command). Handlers and hooks may be
plain or ``async`` methods. ``setup.py`` discovers the marks and registers wrapped handlers with
pygls; features never touch pygls' registration API themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pygls.exceptions import JsonRpcInvalidParams

if TYPE_CHECKING:
    from lsprotocol import types

    from lsp_server.server import CodeLlamaServer
    from lsp_server.settings import Settings

__all__ = ["Feature", "InvalidParams", "command", "command_argument", "lsp"]

F = TypeVar("F", bound=Callable[..., Any])
LSP_MARK = "_codellama_lsp"
COMMAND_MARK = "_codellama_command"


def lsp(method: str, options: Any = None) -> Callable[[F], F]:
    """Mark a method as the handler of LSP ``method`` (with pygls registration ``options``).

    The method receives the structured params (``lsprotocol`` type) and returns the result.
    """

    def mark(fn: F) -> F:
        setattr(fn, LSP_MARK, (method, options))
        return fn

    return mark


def command(name: str) -> Callable[[F], F]:
    """Mark a method as the ``workspace/executeCommand`` handler of ``name``.

    The method is called as ``method(*arguments)``: VS Code's palette sends no arguments,
    our clients send one object (a ``dict``), so write ``def run(self, *args: Any)`` and use
    :func:`command_argument` to read the optional first argument.
    """

    def mark(fn: F) -> F:
        setattr(fn, COMMAND_MARK, name)
        return fn

    return mark


class InvalidParams(JsonRpcInvalidParams, ValueError):
    """Raise from a handler or command for arguments the user got wrong: the request answers
    ``InvalidParams`` (-32602) with this message, which should say what is expected. (Also a
    ``ValueError``, so code that validated with ``except ValueError`` keeps working.)"""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def command_argument(args: tuple[Any, ...] | list[Any], command: str = "") -> dict[str, Any]:
    """The optional single argument object of a command (``{}`` when none was sent).

    A bare string is returned as ``{"value": s}`` (e.g. ``codellama.useAdapter "path"``).
    Anything else (a number, a list, several arguments) raises :class:`InvalidParams` naming
    ``command`` and what it accepts.
    """
    if not args or (len(args) == 1 and args[0] is None):
        return {}
    first = args[0]
    name = f"{command}: " if command else ""
    if len(args) > 1:
        raise InvalidParams(
            f"{name}expected no argument or one JSON object, got {len(args)} arguments"
        )
    if isinstance(first, dict):
        return first
    if isinstance(first, str):
        return {"value": first}
    raise InvalidParams(
        f"{name}expected no argument or one JSON object, got {_json_type(first)} {first!r:.80}"
    )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


class Feature:
    """Base class of features. Override the hooks you need; all are optional.

    Hooks run on the event loop: keep them quick; start long work with ``self.server.spawn``
    and model work with ``self.server.host.run``. A hook that raises is logged with its
    traceback and the other features still get theirs.
    """

    name: ClassVar[str] = ""
    """Short name used in logs (defaults to the class name)."""

    def __init__(self, server: CodeLlamaServer) -> None:
        self.server = server

    def initialize(self, params: types.InitializeParams) -> None:
        """During ``initialize`` (before the response): must be fast, must not import torch."""

    def initialized(self) -> Any:
        """After ``initialized``, once settings have been read (the first ``settings_changed``
        has already run)."""

    def settings_changed(self, old: Settings | None, new: Settings) -> Any:
        """Settings were (re)read; ``old`` is ``None`` the first time. ``server.raw_settings``
        holds the merged client JSON for feature-specific keys."""

    def document_opened(self, params: types.DidOpenTextDocumentParams) -> Any:
        """``textDocument/didOpen`` (pygls has already stored the document)."""

    def document_changed(self, params: types.DidChangeTextDocumentParams) -> Any:
        """``textDocument/didChange`` (pygls has already applied the change)."""

    def document_saved(self, params: types.DidSaveTextDocumentParams) -> Any:
        """``textDocument/didSave``."""

    def document_closed(self, params: types.DidCloseTextDocumentParams) -> Any:
        """``textDocument/didClose``."""

    def workspace_folders_changed(self, params: types.DidChangeWorkspaceFoldersParams) -> Any:
        """``workspace/didChangeWorkspaceFolders`` (``server.workspace.folders`` and
        ``server.workspace_root`` already reflect the change)."""

    def shutdown(self) -> Any:
        """``shutdown`` request: stop background work (threads, processes, watchers)."""

    def status(self) -> dict[str, Any] | None:
        """A JSON-able section for ``codellama.status`` (``None`` to contribute nothing)."""
        return None
