"""The watcher end to end with real file operations."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dataset_helpers import PY, run_git, write

from dataset import api
from dataset.config import DatasetConfig
from dataset.watcher import ChangeEvent

CFG = DatasetConfig(debounce_s=0.05, export_interval_s=0.1)


def _paths(root: Path) -> set[str]:
    return {r["file_path"] for r in api.load_records(root)}


def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
def test_watch_end_to_end(tmp_path: Path, use_git: bool, git_repo: Callable[..., Path]) -> None:
    files: dict[str, str | bytes] = {"a.py": PY, ".gitignore": "*.log\nignored_dir/\n"}
    if use_git:
        root = git_repo(files)
    else:
        root = tmp_path / "ws"
        write(root, files)
    events: list[ChangeEvent] = []
    lock = threading.Lock()

    def on_change(event: ChangeEvent) -> None:
        with lock:
            events.append(event)

    watcher = api.watch(root, config=CFG, on_change=on_change)
    watcher.start()
    try:
        assert _paths(root) == {"a.py", ".gitignore"}
        # create
        (root / "b.py").write_text(PY)
        _until(lambda: "b.py" in _paths(root))
        # modify
        (root / "b.py").write_text(PY + "\nEXTRA = 42\n")
        _until(lambda: any("EXTRA = 42" in r["content"] for r in api.load_records(root)))
        # rename
        os.rename(root / "b.py", root / "c.py")
        _until(lambda: _paths(root) == {"a.py", ".gitignore", "c.py"})
        # create in a new directory, then move the directory
        (root / "pkg").mkdir()
        (root / "pkg" / "m.py").write_text(PY)
        _until(lambda: "pkg/m.py" in _paths(root))
        os.rename(root / "pkg", root / "pkg2")
        _until(lambda: "pkg2/m.py" in _paths(root) and "pkg/m.py" not in _paths(root))
        # delete
        (root / "c.py").unlink()
        shutil.rmtree(root / "pkg2")
        _until(lambda: _paths(root) == {"a.py", ".gitignore"})
        # ignored files and trees never enter, and cost no batch
        time.sleep(0.3)  # let late events of the operations above settle
        assert watcher.wait_idle()
        batches = watcher.counters["batches"]
        (root / "debug.log").write_text("log line\n")
        (root / "ignored_dir").mkdir()
        for i in range(50):
            (root / "ignored_dir" / f"x{i}.py").write_text(PY)
        time.sleep(0.3)
        assert watcher.wait_idle()
        assert watcher.counters["ignored_events"] >= 50
        assert watcher.counters["batches"] == batches
        # a .gitignore edit re-evaluates what it governs: un-ignore the dir, ignore a.py
        (root / ".gitignore").write_text("*.log\na.py\n")
        # (in git, a.py is tracked: tracked files stay in scope whatever .gitignore says)
        tracked = {"a.py"} if use_git else set()
        _until(
            lambda: (
                _paths(root)
                == {".gitignore", *tracked} | {f"ignored_dir/x{i}.py" for i in range(50)}
            )
        )
        (root / ".gitignore").write_text("*.log\nignored_dir/\n")
        _until(lambda: _paths(root) == {"a.py", ".gitignore"})
    finally:
        watcher.stop()
    assert watcher.last_error is None
    # the export after stop equals the committed state
    from dataset.store import read_jsonl

    assert {r["file_path"] for r in read_jsonl(api.dataset_path(root))} == {"a.py", ".gitignore"}
    assert events and all(e.latency_s >= 0 for e in events)
    assert any("b.py" in e.changed for e in events) and any("c.py" in e.removed for e in events)


def test_tracked_state_changes_follow_git_index(git_repo: Callable[..., Path]) -> None:
    root = git_repo({"a.py": PY, ".gitignore": "forced.py\n"})
    (root / "forced.py").write_text(PY)
    watcher = api.watch(root, config=CFG)
    watcher.start()
    try:
        assert "forced.py" not in _paths(root)
        run_git(root, "add", "-f", "forced.py")  # tracked files are in scope even if ignored
        _until(lambda: "forced.py" in _paths(root))
    finally:
        watcher.stop()


def test_reconcile_on_start_rereads_only_changed_files(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write(root, {f"m{i:03d}.py": PY for i in range(200)})
    first = api.build(root)
    assert first.files_read == 200
    # Changes while nobody watches: one edit, one touch (same bytes), one delete, one new file.
    (root / "m000.py").write_text(PY + "\nCHANGED = 1\n")
    os.utime(root / "m001.py", (time.time() + 5, time.time() + 5))
    (root / "m002.py").unlink()
    (root / "new.py").write_text(PY)
    watcher = api.watch(root, config=CFG)
    initial = watcher.start()
    watcher.stop()
    assert initial.files_read == 3  # m000 (changed), m001 (re-hashed, same sha), new.py
    paths = _paths(root)
    assert "m002.py" not in paths and "new.py" in paths and len(paths) == 200
    record = next(r for r in api.load_records(root) if r["file_path"] == "m001.py")
    assert abs(record["mtime"] - os.stat(root / "m001.py").st_mtime) < 1e-3


def test_reading_files_costs_the_watcher_nothing(tmp_path: Path) -> None:
    """Reads (a ``.venv`` being imported from, an editor opening files) deliver no events."""
    root = tmp_path / "ws"
    write(root, {"pkg/mod.py": PY, ".venv/lib/site.py": PY, ".gitignore": ".venv/\n"})
    watcher = api.watch(root, config=CFG)
    watcher.start()
    try:
        watcher.wait_idle()
        time.sleep(0.5)  # the start-up sync's own writes under .codellama/ are delivered
        before = watcher.counters["events"]
        for _ in range(300):
            for rel in ("pkg/mod.py", ".venv/lib/site.py"):
                with open(root / rel, "rb") as handle:
                    handle.read()
        time.sleep(0.3)
        assert watcher.counters["events"] == before, watcher.counters
        write(root, {"pkg/new.py": PY})
        _until(lambda: "pkg/new.py" in _paths(root))
        assert watcher.counters["events"] > before, watcher.counters
    finally:
        watcher.stop()
