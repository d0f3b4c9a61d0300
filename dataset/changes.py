"""Decide the paths one watcher batch touched: what to upsert and what leaves the dataset.

Catalogue work only, no threads or events (those are :mod:`dataset.watcher`'s): a changed ignore
file or git index first updates the scope, then every touched directory is re-listed and every
touched file re-decided; only paths whose mtime or size changed are read, only those whose
sha256 changed re-filtered (:func:`dataset.process.process_file`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from dataset.config import DatasetConfig
from dataset.process import KEPT, Outcome, complete_touch, process_file
from dataset.scope import Scope, display_path
from dataset.store import Catalogue


@dataclass(frozen=True)
class ChangeDecider:
    """Re-decides the touched paths of one workspace against its catalogue."""

    root: Path
    config: DatasetConfig
    scope: Scope
    scope_lock: threading.Lock
    """Guards ``scope``, which the watcher's event thread reads meanwhile."""

    def decide(
        self, cat: Catalogue, files: set[str], dirs: set[str], *, rules: bool, index: bool
    ) -> tuple[list[Outcome], list[str]]:
        """``(outcomes to upsert, catalogued paths to remove)`` for touched ``files``, ``dirs``.

        ``rules``: an ignore file changed (the scope re-reads its rules); ``index``: git's index
        changed (files whose tracked state changed are re-decided too).
        """
        with self.scope_lock:
            if rules:
                self.scope.invalidate_rules()
            if index and self.scope.mode == "git":
                old = self.scope.tracked
                self.scope.refresh_tracked()
                files |= old ^ self.scope.tracked
        upserts: list[Outcome] = []
        removed: list[str] = []
        handled: set[str] = set()
        for directory in sorted(dirs):
            self._decide_dir(cat, directory, upserts, removed, handled)
        for path in sorted(files - handled):
            self._decide_file(cat, path, upserts, removed)
        return upserts, removed

    def _decide_dir(
        self, cat: Catalogue, directory: str, upserts: list[Outcome], removed: list[str],
        handled: set[str],
    ) -> None:  # fmt: skip
        prefix = directory + "/" if directory else ""
        previous = cat.outcomes(prefix)
        full = self.root / directory if directory else self.root
        with self.scope_lock:
            if not full.is_dir() or (directory and self.scope.quick_ignored_dir(directory)):
                listed: list[str] = []
            else:
                listed = self.scope.list_files(directory).files
        for path in listed:
            prev = previous.get(display_path(path))
            outcome = process_file(self.root, path, self.config, prev)
            if outcome is not prev:
                if outcome.status == KEPT and outcome.record is None:
                    outcome = complete_touch(outcome, cat.get(outcome.path))
                upserts.append(outcome)
            handled.add(path)
        seen = {display_path(p) for p in listed}
        for path in previous:
            if path not in seen:
                removed.append(path)
                handled.add(path)

    def _decide_file(
        self, cat: Catalogue, path: str, upserts: list[Outcome], removed: list[str]
    ) -> None:
        prev = cat.get(display_path(path))
        with self.scope_lock:
            wanted = self.scope.in_scope(path)
        if wanted and os.path.lexists(self.root / path):
            outcome = process_file(self.root, path, self.config, prev)
            if outcome is not prev:
                upserts.append(outcome)
        elif prev is not None:
            removed.append(prev.path)
