"""Serving the model: background (re)load with ``$/progress`` and ``codellama.useAdapter``.

A change of ``model``, ``device``, ``dtype`` or ``trustRemoteCode`` reloads the weights; a change
of ``adapter`` hot-swaps the adapter; ``contextTokens``/``promptLookup`` only rebuild the engine
wrapper. Loads run on the model worker thread; the event loop keeps answering (completions are
empty until the model is ready). A failed load is shown to the user with what to do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from lsp_server.feature import Feature, command
from lsp_server.model_host import LoadFailure, ModelKey
from lsp_server.settings import Settings
from lsp_server.setup import command_argument

__all__ = ["ModelFeature"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Override:
    client_value: str | None
    """The client's ``adapter`` setting when the override was made (a change of it wins)."""
    adapter: str | None


class ModelFeature(Feature):
    """Loads the configured model in the background and keeps it in sync with settings."""

    name = "model"

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self._override: _Override | None = None
        self._client_adapter: str | None = None
        self._load: asyncio.Task[bool] | None = None

    def settings_changed(self, old: Settings | None, new: Settings) -> None:
        self._client_adapter = new.adapter
        if self._override is not None and self._override.client_value == new.adapter:
            new = dataclasses.replace(new, adapter=self._override.adapter)
            self.server.settings = new
        else:
            self._override = None
        if old is None or ModelKey.of(old) != ModelKey.of(new) or old.adapter != new.adapter:
            self.start_load(new)
        elif (old.context_tokens, old.prompt_lookup) != (new.context_tokens, new.prompt_lookup):
            self.server.host.reconfigure(new)

    def start_load(self, settings: Settings) -> asyncio.Task[bool]:
        """(Re)load for ``settings`` in the background; completions answer empty meanwhile."""
        self.server.completions.cancel_all()
        self.server.completions.cache.clear()
        self._load = self.server.spawn(self._run_load(settings), name="load model")
        return self._load

    async def _run_load(self, settings: Settings) -> bool:
        what = settings.model or "default model"
        if settings.adapter:
            what += f" + adapter {settings.adapter}"
        progress = await self.server.work_progress("codellama: loading model").begin(what)
        future = self.server.host.load(
            settings, progress=lambda done, total, message: progress.report(message, done, total)
        )
        try:
            await asyncio.wrap_future(future)
        except LoadFailure as exc:
            progress.end("failed")
            self.server.show(f"codellama: {exc}", types.MessageType.Error)
            return False
        except asyncio.CancelledError:
            progress.end("cancelled")
            raise
        info = self.server.host.info
        progress.end(f"ready: {info.get('model')} on {info.get('device')} ({info.get('dtype')})")
        return True

    @command("codellama.useAdapter")
    async def use_adapter(self, *args: Any) -> dict[str, Any]:
        """Serve an adapter directory (``{"path": ...}`` or a string); ``"none"`` unloads."""
        argument = command_argument(args)
        path = argument.get("path", argument.get("value"))
        if path is not None and not isinstance(path, str):
            raise JsonRpcInvalidParams(f"codellama.useAdapter: path must be a string, got {path!r}")
        path = None if path in (None, "", "none") else _adapter_directory(path)
        previous = self._override
        self._override = _Override(self._client_adapter, path)
        self.server.settings = dataclasses.replace(self.server.settings, adapter=path)
        ok = await asyncio.shield(self.start_load(self.server.settings))
        if not ok:
            self._swap_failed(previous)
        # What IS served (the host knows), not what was asked for.
        return {"ok": ok, "requested": path, **self.server.host.status()}

    def _swap_failed(self, previous: _Override | None) -> None:
        """A failed ``useAdapter`` leaves no trace: the override and the served adapter are
        what they were (or, if the host could not restore it, what it really serves)."""
        served = self.server.host.adapter
        if previous is not None and previous.adapter == served:
            self._override = previous
        elif served == self._client_adapter:
            self._override = None
        else:
            self._override = _Override(self._client_adapter, served)
        self.server.settings = dataclasses.replace(self.server.settings, adapter=served)

    def status(self) -> dict[str, Any] | None:
        return {"adapterOverride": self._override.adapter if self._override else None}


def _adapter_directory(path: str) -> str:
    """``path`` resolved, if it is an adapter directory; else InvalidParams saying what to pass."""
    expected = (
        "pass the adapter directory written by codellama.finetune (it holds "
        "adapter_config.json), or 'none' for the base model"
    )
    try:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise JsonRpcInvalidParams(
                f"codellama.useAdapter: {path!r} is not a directory; {expected}"
            )
        if not (directory / "adapter_config.json").is_file():
            raise JsonRpcInvalidParams(
                f"codellama.useAdapter: {path!r} is not an adapter directory; {expected}"
            )
        return str(directory.resolve())
    except (OSError, ValueError, RuntimeError) as exc:  # NUL byte, "~nobody", loops
        raise JsonRpcInvalidParams(f"codellama.useAdapter: {path!r}: {exc}; {expected}") from exc
