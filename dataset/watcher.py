"""Keep the dataset in sync with the workspace from watchdog events.

Events are filtered on arrival (a dictionary lookup for anything under an ignored or vendored
tree), collected until the workspace is quiet for ``config.debounce_s``, then applied in one
catalogue transaction: only the touched paths are stat-ed, only changed ones read, only those
whose sha256 changed re-filtered (:class:`dataset.changes.ChangeDecider`). ``dataset.jsonl`` is
re-exported in a background thread at most every ``config.export_interval_s``. An ignore-file
edit re-lists the directory it governs; a change of git's index re-evaluates the files whose
tracked state changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from dataset.builder import BuildStats, make_scope, reconcile, resolve_paths
from dataset.changes import ChangeDecider
from dataset.config import DatasetConfig
from dataset.known_secrets import propagate
from dataset.process import KEPT
from dataset.store import DATASET, Catalogue, export

log = logging.getLogger(__name__)

IGNORE_FILES = frozenset({".gitignore", ".codellamaignore"})


@dataclass(frozen=True)
class ChangeEvent:
    """One committed batch of changes."""

    changed: tuple[str, ...]
    """Paths whose record was added or updated."""
    removed: tuple[str, ...]
    """Paths whose record left the dataset (deleted, moved away, now ignored or filtered)."""
    dropped: dict[str, str] = field(default_factory=dict)
    """Paths seen in this batch and filtered, with the reason."""
    generation: int = 0
    first_event_at: float = 0.0
    """``time.monotonic()`` of the first event of the batch."""
    started_at: float = 0.0
    """``time.monotonic()`` when the debounce ended and processing began."""
    committed_at: float = 0.0
    """``time.monotonic()`` right after the catalogue transaction committed."""

    @property
    def latency_s(self) -> float:
        """Processing time of the batch, debounce excluded."""
        return self.committed_at - self.started_at


OnChange = Callable[[ChangeEvent], None]


WATCHED_EVENTS: tuple[type[FileSystemEvent], ...] = (
    FileCreatedEvent, FileModifiedEvent, FileDeletedEvent, FileMovedEvent, FileClosedEvent,
    DirCreatedEvent, DirDeletedEvent, DirMovedEvent,
)  # fmt: skip
"""The only events asked of the kernel. Without this filter inotify also reports every *read*
(``IN_OPEN`` / ``IN_CLOSE_NOWRITE``): a process importing torch from a ``.venv`` inside the
workspace then floods the watcher thread, and the GIL it holds slowed completions in the same
server process by ~1.7× (measured with ``bench/lsp_bench.py``)."""


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.watcher._on_event(event)


class Watcher:
    """Incremental sync driven by filesystem events; ``start()`` reconciles first."""

    def __init__(
        self,
        workspace: str | Path,
        *,
        out: str | Path | None = None,
        config: DatasetConfig | None = None,
        on_change: OnChange | None = None,
        on_export: Callable[[int, float], None] | None = None,
    ) -> None:
        self.root, self.state = resolve_paths(workspace, out)
        self.config = config or DatasetConfig()
        self.on_change = on_change
        self.on_export = on_export
        self.dataset_path = self.state / DATASET
        self.scope = make_scope(self.root, self.state, self.config)
        self._root_str = str(self.root)
        self._lock = threading.Condition()
        self._scope_lock = threading.Lock()
        self._decider = ChangeDecider(self.root, self.config, self.scope, self._scope_lock)
        self._files: set[str] = set()
        self._dirs: set[str] = set()
        self._rules_changed = False
        self._index_changed = False
        self._first_event = 0.0
        self._last_event = 0.0
        self._stopping = False
        self._busy = False
        self._export_wanted = threading.Event()
        self._last_export_s = 0.0
        self._threads: list[threading.Thread] = []
        self._observer: object | None = None
        self.counters = {"events": 0, "ignored_events": 0, "batches": 0, "exports": 0}
        self.last_error: str | None = None
        self.initial: BuildStats | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> BuildStats:
        """Watch, then reconcile with what changed while nobody watched; returns that sync."""
        from watchdog.observers import Observer

        observer = Observer()
        observer.schedule(
            _Handler(self), self._root_str, recursive=True, event_filter=list(WATCHED_EVENTS)
        )
        try:
            observer.start()
        except OSError as exc:  # inotify watch limit: poll instead of failing
            from watchdog.observers.polling import PollingObserver

            log.warning("inotify unavailable (%s); polling %s", exc, self.root)
            observer = PollingObserver(timeout=1.0)
            observer.schedule(
                _Handler(self), self._root_str, recursive=True, event_filter=list(WATCHED_EVENTS)
            )
            observer.start()
        self._observer = observer
        self.initial = reconcile(self.root, self.state, self.config, full=False, scope=self.scope)
        for target in (self._batch_loop, self._export_loop):
            thread = threading.Thread(target=target, name=f"dataset-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self.initial

    def stop(self) -> None:
        """Stop watching; pending changes are committed and exported first."""
        observer = self._observer
        if observer is not None:
            observer.stop()  # type: ignore[attr-defined]
            observer.join(timeout=5)  # type: ignore[attr-defined]
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._export_wanted.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until no event is pending or being processed (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while (
                self._files
                or self._dirs
                or self._busy
                or self._rules_changed
                or self._index_changed
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.05))
        return True

    # -- events (observer thread: keep it cheap) -----------------------------------------
    def _on_event(self, event: FileSystemEvent) -> None:
        self.counters["events"] += 1
        if event.event_type in ("opened", "closed_no_write"):
            return
        paths = [event.src_path]
        dest = getattr(event, "dest_path", "")
        if dest:
            paths.append(dest)
        for raw in paths:
            path = os.fsdecode(raw)
            if not path.startswith(self._root_str):
                continue
            rel = path[len(self._root_str) + 1 :].replace(os.sep, "/")
            if not rel:
                continue
            self._classify(rel, event.is_directory, event.event_type)

    def _classify(self, rel: str, is_dir: bool, kind: str) -> None:
        if rel.startswith(".git/") or rel == ".git":
            if rel == ".git/index":
                self._enqueue(index=True)
            elif rel == ".git/info/exclude":
                self._enqueue(rules=True, directory="")
            else:
                self.counters["ignored_events"] += 1
            return
        parent, _, name = rel.rpartition("/")
        with self._scope_lock:
            drop = self.scope.quick_ignored_dir(parent) if parent else False
            if not drop and is_dir:
                drop = self.scope.quick_ignored_dir(rel) and kind not in ("deleted", "moved")
            elif not drop and kind not in ("deleted", "moved") and name not in IGNORE_FILES:
                # An ignored file that is not catalogued needs no batch at all.
                drop = not self.scope.in_scope(rel)
        if name in IGNORE_FILES and not is_dir:
            self._enqueue(rules=True, directory=parent, file=rel)
            return
        if drop:
            self.counters["ignored_events"] += 1
            return
        if is_dir:
            if kind != "modified":
                self._enqueue(directory=rel)
        else:
            self._enqueue(file=rel)

    def _enqueue(
        self, *, file: str | None = None, directory: str | None = None,
        rules: bool = False, index: bool = False,
    ) -> None:  # fmt: skip
        now = time.monotonic()
        with self._lock:
            if not (self._files or self._dirs or self._rules_changed or self._index_changed):
                self._first_event = now
            self._last_event = now
            if file is not None:
                self._files.add(file)
            if directory is not None:
                self._dirs.add(directory)
            self._rules_changed |= rules
            self._index_changed |= index
            self._lock.notify_all()

    # -- batches (worker thread) ---------------------------------------------------------
    def _batch_loop(self) -> None:
        cat = Catalogue(self.state)
        try:
            while True:
                with self._lock:
                    while not (
                        self._files or self._dirs or self._rules_changed or self._index_changed
                    ):
                        if self._stopping:
                            return
                        self._lock.wait(0.5)
                    # Debounce: wait until the workspace has been quiet for debounce_s.
                    while not self._stopping:
                        quiet = time.monotonic() - self._last_event
                        if quiet >= self.config.debounce_s:
                            break
                        self._lock.wait(self.config.debounce_s - quiet)
                    files, dirs = self._files, self._dirs
                    rules, index = self._rules_changed, self._index_changed
                    first = self._first_event
                    self._files, self._dirs = set(), set()
                    self._rules_changed = self._index_changed = False
                    self._busy = True
                try:
                    self._apply(cat, files, dirs, rules, index, first)
                except Exception as exc:  # keep watching; the next batch or restart reconciles
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("dataset watcher batch failed")
                finally:
                    with self._lock:
                        self._busy = False
                        self._lock.notify_all()
        finally:
            cat.close()

    def _apply(
        self,
        cat: Catalogue,
        files: set[str],
        dirs: set[str],
        rules: bool,
        index: bool,
        first: float,
    ) -> None:
        started = time.monotonic()
        upserts, removed = self._decider.decide(cat, files, dirs, rules=rules, index=index)
        with cat.transaction() as db:
            cat.delete(db, removed)
            # Known secrets: redact them in these records, and a newly found one everywhere.
            upserts, _, rewritten = propagate(db, upserts, None)
            cat.upsert(db, upserts)
            row = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
            generation = (int(row[0]) if row else 0) + 1
        committed = time.monotonic()
        self.counters["batches"] += 1
        if upserts or removed:
            self._export_wanted.set()
        event = ChangeEvent(
            changed=tuple(o.path for o in upserts if o.status == KEPT) + tuple(rewritten),
            removed=tuple(removed) + tuple(o.path for o in upserts if o.status != KEPT),
            dropped={o.path: o.status for o in upserts if o.status != KEPT},
            generation=generation,
            first_event_at=first,
            started_at=started,
            committed_at=committed,
        )
        if self.on_change is not None and (event.changed or event.removed or event.dropped):
            try:
                self.on_change(event)
            except Exception:
                log.exception("on_change callback failed")

    # -- export (background thread) ------------------------------------------------------
    def _export_loop(self) -> None:
        cat = Catalogue(self.state)
        last = 0.0
        try:
            while True:
                # Poll _stopping too: a stop() racing with clear() below must not be lost.
                if not self._export_wanted.wait(0.25) and not self._stopping:
                    continue
                if self._stopping:
                    # Final export once the batch thread has drained.
                    self._drain()
                    self._export_once(cat)
                    return
                # At most one export per interval, and at most ~25 % of the time exporting: a
                # big workspace's export must not starve the commits it follows.
                interval = max(self.config.export_interval_s, 3 * self._last_export_s)
                wait = interval - (time.monotonic() - last)
                if wait > 0 and not self._stopping:
                    time.sleep(wait)
                self._export_wanted.clear()
                self._export_once(cat)
                last = time.monotonic()
        finally:
            cat.close()

    def _drain(self) -> None:
        for thread in self._threads:
            if thread.name.endswith("_batch_loop") and thread is not threading.current_thread():
                thread.join(timeout=30)

    def _export_once(self, cat: Catalogue) -> None:
        try:
            count, seconds = export(cat, self.dataset_path)
        except Exception as exc:
            self.last_error = f"export failed: {exc}"
            log.exception("dataset export failed")
            return
        self.counters["exports"] += 1
        self._last_export_s = seconds
        if self.on_export is not None:
            with contextlib.suppress(Exception):
                self.on_export(count, seconds)
