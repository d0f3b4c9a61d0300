"""The Python API contract and the ``codellama-dataset`` CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dataset_helpers import PY, write

from dataset import api, cli
from dataset.records import SCHEMA_VERSION, validate


def _ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write(root, {"a.py": PY, "b.ts": "export const x = 1;\nexport function f() { return x; }\n",
                 "notes.md": "# Notes\n\nSome text here.\n", "image.png": b"\x89PNG\x00\x00data",
                 "data.bin.py": b"abc\x00\x01", "vendor/lib.py": PY, ".env": "A=1\n"})  # fmt: skip
    return root


def test_records_follow_the_schema(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    api.build(root)
    records = api.load_records(root)
    assert {r["file_path"] for r in records} == {"a.py", "b.ts", "notes.md"}
    for r in records:
        validate(r)
        assert r["schema_version"] == SCHEMA_VERSION and r["source"] == "file"
        data = (root / r["file_path"]).read_bytes()
        import hashlib

        assert r["sha256"] == hashlib.sha256(data).hexdigest() and r["size"] == len(data)
        assert abs(r["mtime"] - os.stat(root / r["file_path"]).st_mtime) < 1e-3
    langs = {r["file_path"]: r["language"] for r in records}
    assert langs == {"a.py": "python", "b.ts": "typescript", "notes.md": "markdown"}
    # The jsonl file, the state dir and the catalogue agree.
    assert api.load_records(api.dataset_path(root)) == records
    assert api.load_records(root / ".codellama") == records


def test_out_dir_and_progress(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    calls: list[tuple[int, int | None, str]] = []
    out = tmp_path / "elsewhere"
    result = api.build(root, out=out, progress=lambda d, t, m: calls.append((d, t, m)))
    assert Path(result.dataset_path) == out / "dataset.jsonl" == api.dataset_path(root, out)
    assert not (root / ".codellama").exists()
    assert (out / ".gitignore").read_text().strip().endswith("*")
    assert calls[0][2] == "listing files"
    done = [c for c in calls if c[1]]
    assert done and done[-1][0] == done[-1][1] and done[-1][1] == result.files_listed
    assert len(api.load_records(root, out=out)) == 3


def test_stats_by_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _ws(tmp_path)
    result = api.build(root)
    assert result.dropped == {"binary": 1, "unknown_language": 1, "vendored": 1, "secret_file": 1}
    assert cli.main(["stats", str(root), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["kept"] == 3 and stats["dropped"] == result.dropped
    assert stats["languages"]["python"]["files"] == 1
    assert stats["token_estimate"] > 0 and "redactions" in stats
    assert cli.main(["stats", str(root)]) == 0
    text = capsys.readouterr().out
    assert "kept 3 files" in text and "binary 1" in text and "python" in text


def test_sync_rereads_only_changes(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    api.build(root)
    again = api.sync(root)
    assert again.files_read == 0
    (root / "a.py").write_text(PY + "\nX = 2\n")
    assert api.sync(root).files_read == 1


def test_language_allow_list_from_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _ws(tmp_path)
    assert cli.main(["build", str(root), "--languages", "python", "--no-progress"]) == 0
    assert {r["file_path"] for r in api.load_records(root)} == {"a.py"}
    assert "language_excluded 2" in capsys.readouterr().out


def test_dataset_imports_nothing_heavy_or_lsp() -> None:
    code = (
        "import sys, dataset.api, dataset.cli, dataset.watcher;"
        "bad = [m for m in ('pygls', 'lsprotocol', 'lsp_server', 'training', 'torch', 'transformers')"
        " if m in sys.modules]; print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_cli_watch_prints_one_line_per_update(tmp_path: Path) -> None:
    root = _ws(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataset.cli", "watch", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("watching ") and "3 records" in first
        (root / "new.py").write_text(PY)
        line = proc.stdout.readline()
        assert "updated new.py" in line and "gen " in line
        time.sleep(0.1)
        (root / "new.py").unlink()
        assert "removed new.py" in proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert {r["file_path"] for r in api.load_records(api.dataset_path(root))} == {
        "a.py",
        "b.ts",
        "notes.md",
    }


def test_parallel_build_equals_in_process_build(tmp_path: Path) -> None:
    from dataset.config import DatasetConfig

    root = tmp_path / "ws"
    files: dict[str, str | bytes] = {
        f"pkg{i % 7}/m{i:03d}.py": PY + f"\nN = {i}\n" for i in range(300)
    }
    files["pkg0/.env"] = "X=1\n"
    files["pkg1/blob.bin"] = b"\x00\x01"
    files["pkg2/secret.py"] = PY + 'API_TOKEN = "ghp_' + "A1b2C3d4" * 4 + 'abcd"\n'
    write(root, files)
    one = api.build(root, out=tmp_path / "one", config=DatasetConfig(workers=1))
    two = api.build(root, out=tmp_path / "two", config=DatasetConfig(workers=2))
    assert api.load_records(tmp_path / "one" / "dataset.jsonl") == api.load_records(
        tmp_path / "two" / "dataset.jsonl"
    )
    assert one.dropped == two.dropped and one.redactions == two.redactions == 1
    assert two.files_read == one.files_read == 301  # .env and blob.bin are never opened
