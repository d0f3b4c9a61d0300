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

if TYPE_CHECKING:
    from lsprotocol import types

    from lsp_server.server import CodeLlamaServer
    from lsp_server.settings import Settings

__all__ = ["Feature", "command", "lsp"]

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
    :func:`lsp_server.setup.command_argument` to read the optional first argument.
    """

    def mark(fn: F) -> F:
        setattr(fn, COMMAND_MARK, name)
        return fn

    return mark


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
