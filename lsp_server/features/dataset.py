"""The live workspace dataset: a watcher that keeps ``dataset.jsonl`` in sync while the server runs.

With ``watchDataset`` on (the default) the server starts a :class:`dataset.watcher.Watcher` on
the workspace root after ``initialized``: it reconciles what changed while nobody watched (with a
``$/progress``), then commits each debounced batch of file events. Turning the setting off, or a
new ``stateDir``, stops / restarts it. ``codellama.rebuildDataset`` rebuilds from scratch, and
:meth:`DatasetFeature.ensure` gives the fine-tune a dataset that is current. The dataset package
does all the work; this module only ties its lifecycle to the server's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

from lsp_server.feature import Feature, command
from lsp_server.settings import Settings
from lsp_server.setup import command_argument

__all__ = ["DatasetFeature", "state_dir"]

logger = logging.getLogger(__name__)


def state_dir(settings: Settings, root: Path) -> Path:
    """Where dataset, runs and adapters live: ``stateDir`` if set, else ``<root>/.codellama``."""
    return Path(settings.state_dir).expanduser() if settings.state_dir else root / ".codellama"


class DatasetFeature(Feature):
    """Owns the workspace watcher; answers ``codellama.rebuildDataset``."""

    name = "dataset"

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self._watcher: Any = None
        self._starting: asyncio.Task[Any] | None = None
        self._lock = threading.Lock()
        self._updates = 0
        self._last_change: dict[str, Any] | None = None
        self._error: str | None = None
        self._initial: dict[str, Any] | None = None

    # -- where ------------------------------------------------------------------------------

    def state_dir(self, root: Path) -> Path:
        """``stateDir`` if set, else ``<workspace>/.codellama``."""
        return state_dir(self.server.settings, root)

    def _out(self) -> str | None:
        return self.server.settings.state_dir or None

    # -- lifecycle --------------------------------------------------------------------------

    def initialized(self) -> None:
        """Start watching once the settings are known."""
        self._apply(self.server.settings)

    def settings_changed(self, old: Settings | None, new: Settings) -> None:
        """Start / stop / restart the watcher when ``watchDataset`` or ``stateDir`` change."""
        if old is None or not self.server.settings_read:
            return  # the first read: ``initialized`` starts it
        if (old.watch_dataset, old.state_dir) != (new.watch_dataset, new.state_dir):
            self._stop()
            self._apply(new)

    def shutdown(self) -> None:
        """Commit what is pending and stop the watcher."""
        self._stop()

    def _apply(self, settings: Settings) -> None:
        root = self.server.workspace_root
        if not settings.watch_dataset or root is None or self._watcher is not None:
            return
        self._starting = self.server.spawn(self._start(root), name="dataset-watch")

    async def _start(self, root: Path) -> None:
        from dataset import api

        progress = await self.server.work_progress("codellama: dataset").begin(
            f"syncing {root.name}"
        )
        watcher = api.watch(root, out=self._out(), on_change=self._on_change)
        try:
            initial = await asyncio.to_thread(watcher.start)
        except Exception as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            logger.exception("dataset watcher failed to start on %s", root)
            progress.end(f"failed: {exc}")
            self.server.show(
                f"codellama: the workspace dataset is not kept in sync ({exc}); "
                "run codellama.rebuildDataset or check the log",
                _warning(),
            )
            return
        with self._lock:
            self._watcher = watcher
            self._error = None
            self._initial = _summary(initial)
        progress.end(f"{self._initial.get('kept', 0)} files, watching")

    def _stop(self) -> None:
        with self._lock:
            watcher, self._watcher = self._watcher, None
        if self._starting is not None:
            self._starting.cancel()
            self._starting = None
        if watcher is not None:
            try:
                watcher.stop()
            except Exception:
                logger.exception("stopping the dataset watcher failed")

    def _on_change(self, event: Any) -> None:
        """Watcher thread: count committed batches (for ``codellama.status``)."""
        with self._lock:
            self._updates += 1
            self._last_change = {
                "at": time.strftime("%H:%M:%S"),
                "changed": list(event.changed)[:5],
                "removed": list(event.removed)[:5],
                "latencyMs": round(event.latency_s * 1000, 1),
            }

    # -- for the fine-tune ------------------------------------------------------------------

    async def ensure(self, root: Path) -> Path:
        """A state dir whose committed dataset reflects the workspace now; returns it.

        While watching: wait until pending events are committed. Otherwise: an incremental
        ``sync`` (which builds from scratch when there is no dataset yet).
        """
        from dataset import api

        watcher = self._watcher
        if watcher is not None:
            await asyncio.to_thread(watcher.wait_idle, 30.0)
        else:
            await asyncio.to_thread(api.sync, root, out=self._out())
        return self.state_dir(root)

    # -- commands ---------------------------------------------------------------------------

    @command("codellama.rebuildDataset")
    async def rebuild_dataset(self, *args: Any) -> dict[str, Any]:
        """Rebuild the workspace dataset from scratch (``{"history": true}`` adds commits)."""
        from dataset import api

        options = command_argument(args)
        root = self.server.workspace_root
        if root is None:
            from pygls.exceptions import JsonRpcInvalidParams

            raise JsonRpcInvalidParams("codellama: open a workspace folder first")
        progress = await self.server.work_progress("codellama: building dataset").begin(str(root))
        try:
            stats = await asyncio.to_thread(
                api.build,
                root,
                out=self._out(),
                history=bool(options.get("history", False)),
                progress=lambda done, total, message: progress.report(message, done, total),
            )
        except Exception as exc:
            progress.end(f"failed: {exc}")
            raise
        result = _summary(stats)
        progress.end(f"{result.get('kept', 0)} files")
        return {"dataset": str(api.dataset_path(root, out=self._out())), **result}

    def status(self) -> dict[str, Any]:
        """Watching or not, where, the start-up sync and the last committed change."""
        root = self.server.workspace_root
        with self._lock:
            return {
                "watching": self._watcher is not None,
                "dataset": str(self.state_dir(root) / "dataset.jsonl") if root else None,
                "initialSync": self._initial,
                "updates": self._updates,
                "lastChange": self._last_change,
                "error": self._error,
            }


def _summary(stats: Any) -> dict[str, Any]:
    """A JSON-able dict of a :class:`dataset.builder.BuildStats` (``notes`` left out)."""
    data: dict[str, Any] = stats.to_dict()
    data.pop("notes", None)
    return data


def _warning() -> Any:
    from lsprotocol import types

    return types.MessageType.Warning
