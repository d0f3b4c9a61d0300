"""The live workspace dataset in the editor: lifecycle hooks and ``codellama.rebuildDataset``.

The :class:`~lsp_server.dataset_service.DatasetService` owns the watcher, the state dir and the
repository-context index; this feature ties it to the server's lifecycle (start once settings
are read, follow ``watchDataset`` / ``stateDir`` and workspace-folder changes, stop at
shutdown) and answers the command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lsp_server.feature import Feature, InvalidParams, command, command_argument
from lsp_server.settings import Settings

if TYPE_CHECKING:
    from lsp_server.dataset_service import DatasetService
    from lsp_server.server import CodeLlamaServer

__all__ = ["DatasetFeature"]


class DatasetFeature(Feature):
    """Keeps the dataset service in step with the server; answers ``codellama.rebuildDataset``."""

    name = "dataset"

    def __init__(self, server: CodeLlamaServer, dataset: DatasetService) -> None:
        super().__init__(server)
        self.dataset = dataset

    def initialized(self) -> None:
        self.dataset.start()

    def settings_changed(self, old: Settings | None, new: Settings) -> None:
        self.dataset.settings_changed(old, new)

    def workspace_folders_changed(self, params: Any) -> None:
        self.dataset.workspace_folders_changed()

    def shutdown(self) -> None:
        self.dataset.shutdown()

    @command("codellama.rebuildDataset")
    async def rebuild_dataset(self, *args: Any) -> dict[str, Any]:
        """Rebuild the workspace dataset from scratch (``{"history": true}`` adds commits)."""
        options = command_argument(args, "codellama.rebuildDataset")
        root = self.server.workspace_root
        if root is None:
            raise InvalidParams("codellama: open a workspace folder first")
        return await self.dataset.rebuild(root, history=bool(options.get("history", False)))

    def status(self) -> dict[str, Any]:
        return self.dataset.status()
