"""Python API of the dataset (used by the language server and training; no LSP imports).

- :func:`build` — full build (every file re-read), optional git history records.
- :func:`sync` — incremental reconcile (only changed files re-read).
- :func:`watch` — a :class:`~dataset.watcher.Watcher` that keeps the dataset in sync.
- :func:`load_records` — the records of a committed state.
- :func:`dataset_path` — where ``dataset.jsonl`` lives.

``progress(done, total, message)`` is called during long work; ``on_change(ChangeEvent)`` after
each committed watcher batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dataset.builder import STATE_DIR, BuildStats, ProgressFn, reconcile, resolve_paths
from dataset.config import DatasetConfig
from dataset.store import CATALOGUE, DATASET, Catalogue, read_jsonl
from dataset.watcher import ChangeEvent, OnChange, Watcher

__all__ = [
    "BuildStats", "ChangeEvent", "DatasetConfig", "ProgressFn", "Watcher", "build",
    "dataset_path", "load_records", "state_dir", "stats", "sync", "watch",
]  # fmt: skip


def state_dir(workspace: str | Path, out: str | Path | None = None) -> Path:
    """The state dir of ``workspace``: ``out`` if given, else ``<workspace>/.codellama`` (resolved)."""
    if out is not None:
        return Path(out).expanduser().resolve()
    return Path(workspace).expanduser().resolve() / STATE_DIR


def dataset_path(workspace: str | Path, out: str | Path | None = None) -> Path:
    """``<workspace>/.codellama/dataset.jsonl``, or ``<out>/dataset.jsonl``."""
    return state_dir(workspace, out) / DATASET


def build(
    workspace: str | Path,
    *,
    out: str | Path | None = None,
    history: bool = False,
    config: DatasetConfig | None = None,
    progress: ProgressFn | None = None,
    repo: str | None = None,
) -> BuildStats:
    """Build the dataset from scratch; with ``repo``, clone that URL into the state dir first."""
    root, state = resolve_paths(workspace, out)
    if repo is not None:
        from dataset.repo import clone_or_update

        if out is None:
            state = root / STATE_DIR
        root = clone_or_update(repo, state, progress)
    return reconcile(
        root, state, config or DatasetConfig(), full=True, history=history, progress=progress
    )


def sync(
    workspace: str | Path,
    *,
    out: str | Path | None = None,
    config: DatasetConfig | None = None,
    progress: ProgressFn | None = None,
) -> BuildStats:
    """Reconcile incrementally: re-read only files whose mtime or size changed."""
    root, state = resolve_paths(workspace, out)
    return reconcile(root, state, config or DatasetConfig(), full=False, progress=progress)


def watch(
    workspace: str | Path,
    *,
    out: str | Path | None = None,
    config: DatasetConfig | None = None,
    on_change: OnChange | None = None,
) -> Watcher:
    """A watcher for the workspace; call ``.start()`` (reconciles, then follows events) and ``.stop()``."""
    return Watcher(workspace, out=out, config=config, on_change=on_change)


def _state_of(path: Path, out: str | Path | None) -> Path:
    if out is not None:
        return Path(out).expanduser().resolve()
    if (path / CATALOGUE).exists() or (path / DATASET).exists():
        return path
    return path / STATE_DIR


def load_records(
    workspace_or_dataset_path: str | Path, *, out: str | Path | None = None
) -> list[dict[str, Any]]:
    """Records of a committed state.

    A ``.jsonl`` path is parsed as is (it is always a whole export). A workspace or state dir is
    read from its catalogue in one read transaction (the newest committed state, which may be
    newer than the last export), or from its ``dataset.jsonl`` when there is no catalogue.
    """
    import json

    path = Path(workspace_or_dataset_path).expanduser().resolve()
    if path.is_file():
        return read_jsonl(path)
    state = _state_of(path, out)
    if (state / CATALOGUE).exists():
        cat = Catalogue(state, readonly=True)
        try:
            with cat.snapshot() as db:
                return [json.loads(line) for line in cat.record_lines(db)]
        finally:
            cat.close()
    if (state / DATASET).exists():
        return read_jsonl(state / DATASET)
    raise FileNotFoundError(f"no dataset for {path}: run `codellama-dataset build {path}` first")


def stats(workspace: str | Path, *, out: str | Path | None = None) -> dict[str, Any]:
    """Totals of the committed state: kept/dropped by reason, languages, sizes, redactions."""
    path = Path(workspace).expanduser().resolve()
    cat = Catalogue(_state_of(path, out), readonly=True)
    try:
        return cat.stats()
    finally:
        cat.close()
