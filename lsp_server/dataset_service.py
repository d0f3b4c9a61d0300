"""The live workspace dataset: a watcher that keeps ``dataset.jsonl`` in sync while the server runs.

With ``watchDataset`` on (the default) the :class:`DatasetService` starts a :class:`dataset.watcher.Watcher` on
the workspace root after ``initialized``: it reconciles what changed while nobody watched (with a
``$/progress``), then commits each debounced batch of file events. Turning the setting off, or a
new ``stateDir``, stops / restarts it. :meth:`DatasetService.rebuild` rebuilds from scratch
(``codellama.rebuildDataset``), and :meth:`DatasetService.ensure` gives the fine-tune and the
evaluation a dataset that is current. The dataset package does all the work; this module only
ties its lifecycle to the server's (the feature :mod:`lsp_server.features.dataset` is the glue).

The same records feed the repository-context index (:mod:`model_runtime.retrieval`) that
completions draw snippets from: built once after the start-up sync (in a thread), then each
committed batch re-indexes only the files it changed or removed, reading their records from
the catalogue. Without the watcher there is no index (and no repository context).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from lsp_server.settings import Settings

if TYPE_CHECKING:
    from lsp_server.completion_service import CompletionService
    from lsp_server.server import CodeLlamaServer

__all__ = ["IDLE_TIMEOUT_S", "DatasetService", "state_dir"]

logger = logging.getLogger(__name__)


IDLE_TIMEOUT_S = 30.0
"""How long :meth:`DatasetService.ensure` waits for the watcher to commit pending changes."""


def state_dir(settings: Settings, root: Path) -> Path:
    """Where dataset, runs and adapters live: ``stateDir`` if set, else ``<root>/.codellama``."""
    from dataset import api

    return api.state_dir(root, settings.state_dir or None)


class DatasetService:
    """Owns the workspace watcher and the repository-context index; rebuilds and ensures."""

    def __init__(self, server: CodeLlamaServer, completions: CompletionService) -> None:
        self.server = server
        self.completions = completions
        self._watched_root: Path | None = None
        self._watcher: Any = None
        self._starting: asyncio.Task[Any] | None = None
        self._lock = threading.Lock()
        self._updates = 0
        self._last_change: dict[str, Any] | None = None
        self._error: str | None = None
        self._initial: dict[str, Any] | None = None
        self._index: Any = None
        self._index_error: str | None = None
        self._sync_lock = asyncio.Lock()

    # -- where ------------------------------------------------------------------------------

    def state_dir(self, root: Path) -> Path:
        """``stateDir`` if set, else ``<workspace>/.codellama``."""
        return state_dir(self.server.settings, root)

    def _out(self) -> str | None:
        return self.server.settings.state_dir or None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start watching (after ``initialized``, once the settings are known)."""
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

    def workspace_folders_changed(self) -> None:
        """Follow ``workspace_root`` (status, rebuild and fine-tune already use the new one)."""
        if self.server.workspace_root != self._watched_root:
            self._stop()
            self._apply(self.server.settings)

    def _apply(self, settings: Settings) -> None:
        root = self.server.workspace_root
        if not settings.watch_dataset or root is None or self._watcher is not None:
            return
        self._watched_root = root
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
                types.MessageType.Warning,
            )
            return
        with self._lock:
            self._watcher = watcher
            self._error = None
            self._initial = _summary(initial)
        progress.end(f"{self._initial.get('kept', 0)} files, watching")
        await self._build_index(root)

    async def _build_index(self, root: Path) -> None:
        """Index the committed records for repository context (a thread: seconds on 10k files)."""
        from dataset import api
        from model_runtime.retrieval import RepoIndex

        index = RepoIndex(name=root.name)
        self._index = index  # batches committed while it builds wait on the index lock
        try:
            records = await asyncio.to_thread(api.load_records, root, out=self._out())
            files = await asyncio.to_thread(index.load, records)
        except Exception as exc:
            self._index = None
            logger.exception("building the repository-context index failed")
            self._index_error = f"{type(exc).__name__}: {exc}"
            return
        logger.info("repository-context index: %d files in %.1f s", files, index.build_seconds)
        self.completions.repo_context.attach(index, root.name)

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
        self._index = None
        self.completions.repo_context.attach(None)

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
        index = self._index
        if index is not None:
            try:
                self._reindex(index, event)
            except Exception:
                logger.exception("updating the repository-context index failed")

    def _reindex(self, index: Any, event: Any) -> None:
        """Watcher thread: re-index the batch's files from their committed records."""
        import json

        from dataset.store import Catalogue

        records: list[dict[str, Any]] = []
        removed = list(event.removed)
        root = self.server.workspace_root
        if event.changed and root is not None:
            cat = Catalogue(self.state_dir(root), readonly=True)
            try:
                for path in event.changed:
                    outcome = cat.get(path)
                    if outcome is not None and outcome.record:
                        records.append(json.loads(outcome.record))
                    else:
                        removed.append(path)
            finally:
                cat.close()
        created = any(str(r.get("file_path")) not in index for r in records)
        index.update(records, removed)
        for record in records:
            index.touch(str(record.get("file_path")))  # just saved: recently edited
        changed = {*removed, *(str(r.get("file_path")) for r in records)}
        # A new file may hold what any cursor needs; an edit only concerns its own snippets.
        self.completions.repo_context.forget(None if created else changed)

    # -- for the fine-tune ------------------------------------------------------------------

    async def ensure(self, root: Path) -> Path:
        """A state dir whose committed dataset reflects the workspace now; returns it.

        While the watcher starts, its initial sync is awaited (never a second sync beside
        it). While watching: wait until pending events are committed, or fail saying so after
        ``IDLE_TIMEOUT_S``. Otherwise: an incremental ``sync`` (which builds from scratch when
        there is no dataset yet).
        """
        from dataset import api

        starting = self._starting
        if starting is not None and not starting.done():
            await asyncio.shield(starting)  # the fine-tune's cancel must not stop the watcher
        watcher = self._watcher
        if watcher is not None:
            if not await asyncio.to_thread(watcher.wait_idle, IDLE_TIMEOUT_S):
                raise RuntimeError(
                    f"the workspace dataset is still catching up with file changes after "
                    f"{IDLE_TIMEOUT_S:.0f} s; try again when the edits have settled"
                )
        else:
            async with self._sync_lock:  # fine-tune and evaluate may ask at once
                await asyncio.to_thread(api.sync, root, out=self._out())
        return self.state_dir(root)

    # -- rebuild ----------------------------------------------------------------------------

    async def rebuild(self, root: Path, *, history: bool = False) -> dict[str, Any]:
        """Rebuild the dataset of ``root`` from scratch (``history``: add commits), with a
        ``$/progress``; the build's summary and the dataset path."""
        from dataset import api

        progress = await self.server.work_progress("codellama: building dataset").begin(str(root))
        try:
            stats = await asyncio.to_thread(
                api.build,
                root,
                out=self._out(),
                history=history,
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
                "repoContext": {
                    "enabled": self.server.settings.repo_context,
                    "error": self._index_error,
                    **self.completions.repo_context.status(),
                },
            }


def _summary(stats: Any) -> dict[str, Any]:
    """A JSON-able dict of a :class:`dataset.builder.BuildStats` (``notes`` left out)."""
    data: dict[str, Any] = stats.to_dict()
    data.pop("notes", None)
    return data
