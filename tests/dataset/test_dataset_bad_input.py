"""Bad input is skipped with a reason in the stats, never a crash or a lost dataset."""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dataset_helpers import PY, write

from dataset import api, cli


def test_permission_denied_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ws"
    write(root, {"ok.py": PY, "locked.py": PY, "lockeddir/x.py": PY})
    os.chmod(root / "locked.py", 0)
    os.chmod(root / "lockeddir", 0)
    real_open = builtins.open
    real_scandir = os.scandir

    # Tests run as root here, which ignores file modes: enforce them the way a user sees them.
    def fake_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith("locked.py"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def fake_scandir(path: Any = ".") -> Any:
        if str(path).endswith("lockeddir"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "scandir", fake_scandir)
    try:
        result = api.build(root)
    finally:
        monkeypatch.undo()
        os.chmod(root / "lockeddir", 0o755)
    assert result.dropped["permission_denied"] == 1
    assert result.skipped["permission_denied"] == 1
    assert {r["file_path"] for r in api.load_records(root)} == {"ok.py"}


def test_file_vanishing_mid_scan(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write(root, {f"f{i:02d}.py": PY for i in range(20)})
    gone: list[str] = []

    def progress(done: int, total: int | None, message: str) -> None:
        # Delete files the scan has listed but not read yet.
        if total and done == 5 and not gone:
            for name in ("f15.py", "f16.py"):
                (root / name).unlink()
                gone.append(name)

    result = api.build(root, progress=progress)
    assert gone
    assert result.dropped["vanished"] == 2
    assert len(api.load_records(root)) == 18


def test_symlink_loops(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write(root, {"ok.py": PY})
    os.symlink(root / "b.py", root / "a.py")
    os.symlink(root / "a.py", root / "b.py")
    os.symlink(root / "loopdir", root / "loopdir")
    os.symlink(root, root / "self")
    result = api.build(root)
    assert result.dropped["symlink_loop"] == 2
    assert {r["file_path"] for r in api.load_records(root)} == {"ok.py"}


def test_non_utf8_names_and_contents(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write(root, {"ok.py": PY, "latin.py": "name = 'café'\n".encode("latin-1"), "ünïcode.py": PY})
    bad_name = os.fsencode(root) + b"/bad_\xff_name.py"
    with open(bad_name, "wb") as fh:
        fh.write(PY.encode())
    result = api.build(root)
    paths = {r["file_path"] for r in api.load_records(root)}
    assert paths == {"ok.py", "ünïcode.py"}
    assert result.dropped["undecodable"] == 1
    assert result.dropped["undecodable_name"] == 1
    text = Path(result.dataset_path).read_text(encoding="utf-8")
    assert "ünïcode.py" in text


def test_broken_git_falls_back_to_walking(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write(root, {"a.py": PY, ".gitignore": "ignored.py\n", "ignored.py": PY})
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("garbage\n")
    result = api.build(root)
    assert result.mode == "walk"
    assert any(reason == "broken_git" for reason, _ in result.notes)
    assert {r["file_path"] for r in api.load_records(root)} == {"a.py", ".gitignore"}


def test_not_a_repository(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write(root, {"a.py": PY})
    result = api.build(root)
    assert result.mode == "walk"
    assert result.notes[0][0] == "not_a_git_repository"


def test_missing_workspace_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["build", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="run `codellama-dataset build"):
        api.load_records(tmp_path)


def test_failed_build_keeps_previous_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "ws"
    write(root, {"a.py": PY, "b.py": PY})
    api.build(root)
    before = api.load_records(root)
    before_jsonl = api.dataset_path(root).read_bytes()

    import dataset.builder as builder

    real: Callable[..., Any] = builder.process_file

    def explode(root: Path, path: str, *args: Any) -> Any:
        if path == "b.py":
            raise RuntimeError("disk on fire")
        return real(root, path, *args)

    monkeypatch.setattr(builder, "process_file", explode)
    (root / "c.py").write_text(PY)
    with pytest.raises(RuntimeError):
        api.build(root)
    assert api.load_records(root) == before
    assert api.dataset_path(root).read_bytes() == before_jsonl
