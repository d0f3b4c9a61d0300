"""Serving the model: settings drive (re)loads; ``codellama.useAdapter`` swaps the adapter.

A change of ``model``, ``device``, ``dtype`` or ``trustRemoteCode`` reloads the weights; a change
of ``adapter`` hot-swaps the adapter; ``contextTokens``/``promptLookup`` only rebuild the engine
wrapper. The :class:`~lsp_server.model_service.ModelService` does the work (loads on the model
worker thread; the event loop keeps answering, completions are empty until the model is ready);
this feature is its LSP glue.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsp_server.feature import Feature, InvalidParams, command, command_argument
from lsp_server.settings import Settings

if TYPE_CHECKING:
    from lsp_server.model_service import ModelService
    from lsp_server.server import CodeLlamaServer

__all__ = ["ModelFeature"]


class ModelFeature(Feature):
    """Hands settings changes and ``codellama.useAdapter`` to the model service."""

    name = "model"

    def __init__(self, server: CodeLlamaServer, model: ModelService) -> None:
        super().__init__(server)
        self.model = model

    def settings_changed(self, old: Settings | None, new: Settings) -> None:
        self.model.settings_changed(old, new)

    @command("codellama.useAdapter")
    async def use_adapter(self, *args: Any) -> dict[str, Any]:
        """Serve an adapter directory (``{"path": ...}`` or a string); ``"none"`` unloads."""
        argument = command_argument(args)
        path = argument.get("path", argument.get("value"))
        if path is not None and not isinstance(path, str):
            raise InvalidParams(f"codellama.useAdapter: path must be a string, got {path!r}")
        return await self.model.use_adapter(
            None if path in (None, "", "none") else adapter_directory(path)
        )

    def status(self) -> dict[str, Any] | None:
        override = self.model.override
        return {"adapterOverride": override.adapter if override else None}


def adapter_directory(path: str) -> str:
    """``path`` resolved, if it is an adapter directory; else InvalidParams saying what to pass."""
    expected = (
        "pass the adapter directory written by codellama.finetune (it holds "
        "adapter_config.json), or 'none' for the base model"
    )
    try:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise InvalidParams(f"codellama.useAdapter: {path!r} is not a directory; {expected}")
        if not (directory / "adapter_config.json").is_file():
            raise InvalidParams(
                f"codellama.useAdapter: {path!r} is not an adapter directory; {expected}"
            )
        return str(directory.resolve())
    except (OSError, ValueError, RuntimeError) as exc:  # NUL byte, "~nobody", loops
        if isinstance(exc, InvalidParams):
            raise
        raise InvalidParams(f"codellama.useAdapter: {path!r}: {exc}; {expected}") from exc
