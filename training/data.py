"""What training and evaluation read: a workspace's dataset records, kept in sync first.

Both ``codellama-train`` and ``codellama-eval`` take ``--workspace W`` (synced here first, as the
server's fine-tune does) or ``--dataset`` (a dataset directory or ``.jsonl`` taken as it is); both
read records through :func:`dataset.api.load_records`. Kept apart from ``training.train`` so that
evaluation does not import the trainer (no import circle).

For a training run: :func:`load_split` (records → train/validation files) and
:func:`pack_training_data` (training files → FIM examples → packed rows, and the batches each
process takes per epoch, :class:`TrainData`).
"""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from training.config import TrainConfig
    from training.examples import ExampleStats
    from training.packing import PackedRow
    from training.split import Split


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


def repo_name(cfg: TrainConfig) -> str:
    """The repository name the server would put in this workspace's prompts (``--repo-name``,
    else named after the workspace or dataset)."""
    from model_runtime.retrieval import repo_name_for

    source = cfg.workspace or cfg.dataset
    return cfg.repo_name or (repo_name_for(source) if source else "")


def load_split(cfg: TrainConfig) -> Split:
    """The run's records (:func:`load_training_records`) split into train and validation files."""
    from training.split import split_records

    split = split_records(load_training_records(cfg), val_fraction=cfg.val_fraction)
    if not split.train:
        raise TrainingError("every file landed in validation; lower --val-fraction")
    return split


@dataclass
class TrainData:
    """The packed rows a run trains on, and which batches of them each process takes."""

    split: Split
    rows: list[PackedRow]
    example_stats: ExampleStats
    batch_size: int
    seed: int
    world: int = 1
    """Number of processes (data-parallel under Accelerate)."""
    rank: int = 0

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This process's batches (row indices) of ``epoch``: a seeded plan, dealt round-robin."""
        from training.packing import plan_batches

        plan = plan_batches(self.rows, self.batch_size, seed=self.seed * 1000 + epoch)
        if len(plan) < self.world:  # tiny data: every process still takes one batch
            return [plan[self.rank % len(plan)]]
        usable = len(plan) - len(plan) % self.world
        return plan[self.rank : usable : self.world]

    def total_steps(self, cfg: TrainConfig) -> int:
        """Optimizer steps of the run: ``--max-steps``, else ``--epochs`` over the batches."""
        steps_per_epoch = max(1, len(self.epoch_batches(0)) // cfg.grad_accum)
        return cfg.max_steps or max(1, math.ceil(steps_per_epoch * cfg.epochs))

    def padding_fraction(self) -> float:
        """Share of pad tokens in the first epoch's batches (all processes together)."""
        from training.packing import padding_fraction, plan_batches

        return padding_fraction(
            self.rows, plan_batches(self.rows, self.batch_size, seed=self.seed * 1000)
        )


def pack_training_data(
    cfg: TrainConfig, split: Split, tokenizer: Any, template: Any, *, world: int, rank: int
) -> TrainData:
    """FIM examples of the training files (with repository context from the training files
    only), packed into rows of ``--context-len``."""
    from training.examples import build_examples
    from training.packing import pack_sequences

    examples, stats = build_examples(
        split.train,
        tokenizer,
        template,
        context_len=cfg.context_len,
        fim_rate=cfg.fim_rate,
        spm_rate=cfg.spm_rate,
        seed=cfg.seed,
        repo_name=repo_name(cfg),
    )
    rows = pack_sequences([e.input_ids for e in examples], cfg.context_len)
    if len(rows) < world:
        raise TrainingError(f"only {len(rows)} packed rows for {world} processes; add data")
    return TrainData(split, rows, stats, cfg.batch_size, cfg.seed, world, rank)
