"""What the server serves: settings → background (re)loads, and adapter swaps that tell the truth.

The :class:`ModelService` turns settings changes into loads on the
:class:`~lsp_server.model_host.ModelHost` (a ``$/progress`` per load, a message when one fails)
and owns adapter overrides: ``codellama.useAdapter`` and the fine-tune's promotion both go
through :meth:`ModelService.use_adapter`, which answers with what the host *really* serves
after the swap, and leaves exactly what was served before when a swap fails. An override lasts
until the client changes its own ``adapter`` setting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from lsp_server.model_host import LoadFailure, ModelHost, ModelKey
from lsp_server.settings import Settings

if TYPE_CHECKING:
    from lsp_server.completion_service import CompletionService
    from lsp_server.server import CodeLlamaServer

__all__ = ["AdapterOverride", "ModelService"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AdapterOverride:
    """An adapter served instead of the client's ``adapter`` setting (``useAdapter``, fine-tune)."""

    client_value: str | None
    """The client's ``adapter`` setting when the override was made (a change of it wins)."""
    adapter: str | None


class ModelService:
    """Keeps the served model in line with the settings and the adapter overrides."""

    def __init__(
        self, server: CodeLlamaServer, host: ModelHost, completions: CompletionService
    ) -> None:
        self.server = server
        self.host = host
        self.completions = completions
        self.override: AdapterOverride | None = None
        self._client_adapter: str | None = None
        self._load: asyncio.Task[bool] | None = None

    @property
    def served_adapter(self) -> str | None:
        """The adapter the engine really serves (``None``: the base model or nothing loaded)."""
        return self.host.adapter

    def settings_changed(self, old: Settings | None, new: Settings) -> None:
        """Reload, hot-swap or reconfigure for ``new``; an override survives unless the
        client's own ``adapter`` setting changed."""
        self._client_adapter = new.adapter
        if self.override is not None and self.override.client_value == new.adapter:
            new = dataclasses.replace(new, adapter=self.override.adapter)
            self.server.settings = new
        else:
            self.override = None
        if old is None or ModelKey.of(old) != ModelKey.of(new) or old.adapter != new.adapter:
            self.start_load(new)
        elif (old.context_tokens, old.prompt_lookup) != (new.context_tokens, new.prompt_lookup):
            self.host.reconfigure(new)

    def start_load(self, settings: Settings) -> asyncio.Task[bool]:
        """(Re)load for ``settings`` in the background; completions answer empty meanwhile."""
        self.completions.cancel_all()
        self.completions.cache.clear()
        self._load = self.server.spawn(self._run_load(settings), name="load model")
        return self._load

    async def _run_load(self, settings: Settings) -> bool:
        what = settings.model or "default model"
        if settings.adapter:
            what += f" + adapter {settings.adapter}"
        progress = await self.server.work_progress("codellama: loading model").begin(what)
        future = self.host.load(
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
        info = self.host.info
        if self.host.remote:
            engine = self.host.status().get("engine", {})
            where = f"the {self.host.backend} engine at {engine.get('endpoint')}"
            progress.end(f"ready: {info.get('model')} through {where}")
        else:
            where = f"{info.get('device')} ({info.get('dtype')})"
            progress.end(f"ready: {info.get('model')} on {where}")
        return True

    async def use_adapter(self, path: str | None) -> dict[str, Any]:
        """Serve the adapter directory ``path`` (``None``: the base model) instead of the
        setting; ``{"ok", "requested", **host status}`` with what *is* served afterwards."""
        previous = self.override
        self.override = AdapterOverride(self._client_adapter, path)
        self.server.settings = dataclasses.replace(self.server.settings, adapter=path)
        ok = await asyncio.shield(self.start_load(self.server.settings))
        if not ok:
            self._swap_failed(previous)
        return {"ok": ok, "requested": path, **self.host.status()}

    def _swap_failed(self, previous: AdapterOverride | None) -> None:
        """A failed swap leaves no trace: the override and the served adapter are what they
        were (or, if the host could not restore it, what it really serves)."""
        served = self.host.adapter
        if previous is not None and previous.adapter == served:
            self.override = previous
        elif served == self._client_adapter:
            self.override = None
        else:
            self.override = AdapterOverride(self._client_adapter, served)
        self.server.settings = dataclasses.replace(self.server.settings, adapter=served)
