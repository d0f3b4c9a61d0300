"""Route the server's log records to the editor (``window/logMessage``) and an optional file.

Only our own loggers (``lsp_server``, ``training``, ``dataset``) are forwarded: pygls logs every
message it sends at INFO, and forwarding that would send a log message about sending a log
message, forever. Records may come from any thread; they reach the client through
``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from lsprotocol import types

__all__ = ["OUR_LOGGERS", "EditorLogHandler", "configure_file_log", "set_level"]

OUR_LOGGERS = ("lsp_server", "model_runtime", "training", "dataset")

_TYPES = [
    (logging.ERROR, types.MessageType.Error),
    (logging.WARNING, types.MessageType.Warning),
    (logging.INFO, types.MessageType.Info),
]


def message_type(levelno: int) -> types.MessageType:
    """LSP message type for a :mod:`logging` level."""
    for threshold, kind in _TYPES:
        if levelno >= threshold:
            return kind
    return types.MessageType.Log


class EditorLogHandler(logging.Handler):
    """Send log records to the client with ``window/logMessage``, from any thread."""

    def __init__(
        self,
        send: Callable[[types.LogMessageParams], None],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__()
        self._send = send
        self.loop = loop
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            params = types.LogMessageParams(
                type=message_type(record.levelno), message=self.format(record)
            )
            loop.call_soon_threadsafe(self._send, params)
        except Exception:  # never let logging take the server down
            self.handleError(record)


_file_handler: logging.FileHandler | None = None


def configure_file_log(path: str | None, level: int = logging.INFO) -> str | None:
    """Log to ``path`` as well (``None`` stops); returns an error message if it cannot be opened."""
    global _file_handler
    if _file_handler is not None:
        for name in OUR_LOGGERS:
            logging.getLogger(name).removeHandler(_file_handler)
        _file_handler.close()
        _file_handler = None
    if not path:
        return None
    try:
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(target, encoding="utf-8")
    except OSError as exc:
        return f"cannot open codellama.logFile {path!r}: {exc.strerror or exc}"
    handler.setLevel(level)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    )
    for name in OUR_LOGGERS:
        logging.getLogger(name).addHandler(handler)
    _file_handler = handler
    return None


_stderr_level = logging.WARNING


def set_level(level: int) -> None:
    """Let records of ``level`` and above through our loggers (and what stderr wants)."""
    for name in OUR_LOGGERS:
        logging.getLogger(name).setLevel(min(level, _stderr_level))


def log_to_stderr(level: int) -> None:
    """Also write our log to stderr at ``level`` (the editor usually shows it in its log)."""
    global _stderr_level
    _stderr_level = level
    handler = logging.StreamHandler()
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    attach(handler)
    logging.getLogger("pygls").addHandler(handler)
    logging.getLogger("pygls").setLevel(max(level, logging.WARNING))
    set_level(logging.INFO)


def attach(handler: logging.Handler) -> None:
    """Forward our loggers' records to ``handler`` (and keep them out of the root logger)."""
    for name in OUR_LOGGERS:
        log = logging.getLogger(name)
        log.addHandler(handler)
        log.propagate = False
