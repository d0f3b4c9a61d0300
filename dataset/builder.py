"""Build and incremental sync: list the scope, decide every changed file, commit once.

``build`` re-reads every file; ``sync`` re-reads only files whose mtime or size changed since the
catalogue saw them (and re-filters only those whose sha256 changed). Both end with one
transaction and an atomic export of ``dataset.jsonl``.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dataset.config import DatasetConfig
from dataset.known_secrets import SECRETS_VERSION, propagate
from dataset.process import KEPT, Outcome, complete_touch, process_file, process_many
from dataset.scope import Listing, Scope, display_path
from dataset.store import DATASET, Catalogue, ensure_state_dir, export

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, "int | None", str], None]
"""``progress(done, total, message)``, called during long work (``total`` None: not known yet)."""
STATE_DIR = ".codellama"


@dataclass
class BuildStats:
    """What one build or sync did, plus the dataset totals after it."""

    workspace: str
    dataset_path: str
    mode: str
    files_listed: int = 0
    files_read: int = 0
    bytes_read: int = 0
    kept: int = 0
    kept_bytes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    languages: dict[str, dict[str, int]] = field(default_factory=dict)
    redactions: int = 0
    commit_records: int = 0
    token_estimate: int = 0
    generation: int = 0
    notes: list[tuple[str, str]] = field(default_factory=list)
    duration_s: float = 0.0
    export_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return dict(self.__dict__)


def resolve_paths(workspace: str | Path, out: str | Path | None) -> tuple[Path, Path]:
    """``(workspace, state_dir)``; raises a clear error when the workspace is not a directory."""
    root = Path(workspace).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"workspace {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"workspace {root} is not a directory")
    root = root.resolve()
    state = Path(out).expanduser().resolve() if out is not None else root / STATE_DIR
    return root, state


def _workers(config: DatasetConfig, files: int) -> int:
    if files < 256:
        return 1
    if config.workers > 0:
        return config.workers
    return max(1, min(4, os.cpu_count() or 1))


def _process_parallel(
    root: Path, paths: list[str], config: DatasetConfig, workers: int, progress: ProgressFn | None
) -> list[Outcome]:
    """Decide files in worker processes (spawned: safe inside a threaded server)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunk = max(16, min(256, len(paths) // (workers * 8) or 16))
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    results: list[list[Outcome]] = [[] for _ in chunks]
    done = 0
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(process_many, str(root), c, config): i for i, c in enumerate(chunks)}
        from concurrent.futures import as_completed

        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            done += len(chunks[i])
            if progress:
                progress(done, len(paths), chunks[i][-1])
    return [o for part in results for o in part]


def make_scope(root: Path, state: Path, config: DatasetConfig) -> Scope:
    """The scope of a workspace, with its state dir excluded."""
    return Scope(root, [state], config.extra_ignores)


def reconcile(
    root: Path,
    state: Path,
    config: DatasetConfig,
    *,
    full: bool,
    history: bool = False,
    progress: ProgressFn | None = None,
    scope: Scope | None = None,
    catalogue: Catalogue | None = None,
    do_export: bool = True,
) -> BuildStats:
    """Bring the catalogue in line with the workspace; ``full`` re-reads every file."""
    start = time.perf_counter()
    ensure_state_dir(state)
    scope = scope or make_scope(root, state, config)
    own = catalogue is None
    cat = catalogue or Catalogue(state)
    try:
        if progress:
            progress(0, None, "listing files")
        listing = scope.list_files()
        meta = cat.meta()
        fingerprint = config.fingerprint()
        if meta.get("config") != fingerprint or meta.get("secrets_version") != SECRETS_VERSION:
            full = True
        previous = {} if full else cat.outcomes()
        total = len(listing.files)
        outcomes = _decide_files(root, listing.files, config, cat, previous, full, progress)
        files_read, bytes_read = _count_reads(outcomes, previous)
        past = _History()
        if history:
            if progress:
                progress(total, total, "reading git history")
            past = _read_history(root, scope, config)
        _commit(cat, scope, listing, fingerprint, full, previous, outcomes, past)
        export_s = 0.0
        if do_export:
            if progress:
                progress(total, total, "exporting dataset.jsonl")
            _, export_s = export(cat, state / DATASET)
        totals = cat.stats()
    finally:
        if own:
            cat.close()
    for key, n in past.counts.items():
        totals["skipped"][key] = n
    return _build_stats(
        root, state, scope, totals,
        files_listed=total, files_read=files_read, bytes_read=bytes_read,
        duration_s=time.perf_counter() - start, export_s=export_s,
    )  # fmt: skip


def _decide_files(
    root: Path,
    files: list[str],
    config: DatasetConfig,
    cat: Catalogue,
    previous: dict[str, Outcome],
    full: bool,
    progress: ProgressFn | None,
) -> list[Outcome]:
    """An outcome per listed file: in worker processes for a big full build, else in-process."""
    total = len(files)
    workers = _workers(config, total) if full else 1
    outcomes: list[Outcome] = []
    if workers > 1:
        try:
            outcomes = _process_parallel(root, files, config, workers, progress)
        except (OSError, RuntimeError) as exc:  # no processes allowed, broken pool, ...
            log.warning("parallel build failed (%s); building in-process", exc)
            workers = 1
    if workers <= 1:
        step = max(1, total // 100)
        for i, path in enumerate(files):
            outcome = process_file(root, path, config, previous.get(display_path(path)))
            outcomes.append(outcome)
            if progress and (i % step == 0 or i + 1 == total):
                progress(i + 1, total, outcome.path)
    return [
        complete_touch(o, cat.get(o.path))
        if o.status == KEPT and o.record is None and previous.get(o.path) is not o
        else o
        for o in outcomes
    ]


def _count_reads(outcomes: list[Outcome], previous: dict[str, Outcome]) -> tuple[int, int]:
    """``(files, bytes)`` read anew by this pass; logs why files were skipped."""
    files_read = bytes_read = 0
    for outcome in outcomes:
        if previous.get(outcome.path) is not outcome and outcome.sha256 is not None:
            files_read += 1
            bytes_read += outcome.size
        if outcome.detail and outcome.status != KEPT:
            log.info("skipped %s: %s (%s)", outcome.path, outcome.status, outcome.detail)
    return files_read, bytes_read


@dataclass
class _History:
    """The commit records of one pass (``None``: history not asked for) and what reading found."""

    commits: list[tuple[str, int, str]] | None = None
    counts: Counter[str] = field(default_factory=Counter)
    """Skipped history sections and commits by reason (reported in ``stats.skipped``)."""
    secrets: set[str] = field(default_factory=set)
    """Secret values found in the history (they join the known secrets)."""


def _read_history(root: Path, scope: Scope, config: DatasetConfig) -> _History:
    """Commit records of the repository, or none (counted) when the workspace is not one."""
    past = _History()
    if scope.mode == "git":
        from dataset.history import commit_records

        past.commits = commit_records(root, scope, config, past.counts, past.secrets)
    else:
        past.counts["history_not_a_repository"] += 1
        past.commits = []
    return past


def _commit(
    cat: Catalogue,
    scope: Scope,
    listing: Listing,
    fingerprint: str,
    full: bool,
    previous: dict[str, Outcome],
    outcomes: list[Outcome],
    past: _History,
) -> None:
    """Write the pass in one transaction: changed records, stale ones gone, secrets propagated."""
    listed = {o.path for o in outcomes}
    stale = [p for p in (previous or cat.outcomes()) if p not in listed]
    changed = [o for o in outcomes if previous.get(o.path) is not o]
    commits = past.commits
    with cat.transaction() as db:
        if full:
            db.execute("DELETE FROM files")
        else:
            cat.delete(db, stale)
        # Secrets found anywhere are redacted everywhere (new and stored records).
        changed, commits, _ = propagate(db, changed, commits, past.secrets)
        cat.upsert(db, changed)
        skipped = [(display_path(p), r, d) for p, r, d in listing.skipped]
        skipped += [(k, k, "") for k in past.counts]
        cat.replace_skipped(db, skipped)
        if commits is not None:
            cat.replace_commits(db, commits)
        cat.set_meta(
            db,
            {
                "config": fingerprint,
                "mode": scope.mode,
                "notes": scope.notes,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )


def _build_stats(
    root: Path,
    state: Path,
    scope: Scope,
    totals: dict[str, Any],
    *,
    files_listed: int,
    files_read: int,
    bytes_read: int,
    duration_s: float,
    export_s: float,
) -> BuildStats:
    """What the pass did (the arguments) and the dataset totals after it (``totals``)."""
    return BuildStats(
        workspace=str(root),
        dataset_path=str(state / DATASET),
        mode=scope.mode,
        files_listed=files_listed,
        files_read=files_read,
        bytes_read=bytes_read,
        kept=totals["kept"],
        kept_bytes=totals["kept_bytes"],
        dropped=totals["dropped"],
        skipped=totals["skipped"],
        languages=totals["languages"],
        redactions=totals["redactions"],
        commit_records=totals["commit_records"],
        token_estimate=totals["token_estimate"],
        generation=totals["generation"],
        notes=list(scope.notes),
        duration_s=duration_s,
        export_s=export_s,
    )
