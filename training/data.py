"""What training and evaluation read: a workspace's dataset records, kept in sync first.

Both ``codellama-train`` and ``codellama-eval`` take ``--workspace W`` (synced here first, as the
server's fine-tune does) or ``--dataset`` (a dataset directory or ``.jsonl`` taken as it is); both
read records through :func:`dataset.api.load_records`. Kept apart from ``training.train`` so that
evaluation does not import the trainer (no import circle).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.config import TrainConfig


class TrainingError(RuntimeError):
    """A user-fixable problem (no data, bad model spec…); the message says what to do."""


def resolve_base_model(spec: str) -> str:
    """``auto`` → the runtime's default model spec."""
    if spec == "auto":
        from model_runtime.spec import default_model

        return default_model()
    return spec


def sync_workspace_dataset(workspace: str | Path) -> None:
    """Bring a workspace's dataset up to date before training or evaluating on it, as the
    server does: built on first use, then incremental (only changed files are re-read), with a
    files-read bar on stderr when it is a terminal."""
    from dataset import api
    from dataset.cli import FileProgressBar

    bar = FileProgressBar(sys.stderr.isatty())
    try:
        stats = api.sync(workspace, progress=bar)
    finally:
        bar.close()
    print(
        f"dataset of {workspace}: {stats.kept} files kept, {stats.redactions} secrets redacted",
        file=sys.stderr,
    )


def load_training_records(cfg: TrainConfig) -> list[dict[str, Any]]:
    """Records from ``--dataset``, or from ``--workspace`` after syncing its dataset."""
    source = cfg.dataset or cfg.workspace
    if not source:
        raise TrainingError("give --workspace DIR or --dataset FILE")
    if not cfg.dataset and Path(source).is_dir():
        sync_workspace_dataset(source)
    try:
        records = read_records(source)
    except FileNotFoundError as exc:
        raise TrainingError(
            f"no dataset found for {source}: run `codellama-dataset build {source}` first ({exc})"
        ) from exc
    files = [r for r in records if r.get("source", "file") == "file" and r.get("content")]
    if not files:
        raise TrainingError(f"the dataset for {source} has no file records to train on")
    return records


def read_records(source: str | Path) -> list[dict[str, Any]]:
    """The records of a ``.jsonl`` file, a workspace or a dataset directory
    (:func:`dataset.api.load_records`); a missing or malformed source is a :class:`TrainingError`."""
    from dataset import api

    path = Path(source)
    if not path.exists():
        raise TrainingError(f"no dataset at {path}: give a workspace directory or a dataset.jsonl")
    try:
        return list(api.load_records(path))
    except ValueError as exc:  # a malformed line: the message names file and line
        raise TrainingError(str(exc)) from exc


def dataset_hash(records: list[dict[str, Any]]) -> str:
    """Hash of (path, content sha) pairs: identifies the data a run trained on."""
    h = hashlib.sha256()
    for r in sorted(records, key=lambda r: str(r.get("file_path"))):
        sha = r.get("sha256") or hashlib.sha256(str(r.get("content", "")).encode()).hexdigest()
        h.update(f"{r.get('file_path')}\0{sha}\n".encode())
    return h.hexdigest()
