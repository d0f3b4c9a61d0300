"""``--history`` commit records (redacted) and ``--repo`` from a local bare repository."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from dataset_helpers import PY, run_git, write

from dataset import api, cli

TOKEN = "ghp_" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7c"
PASSWORD = "Sup3r-S3cret-Pw!"


def _history_repo(git_repo: Callable[..., Path]) -> Path:
    root = git_repo({"app.py": PY, ".gitignore": "*.log\n"})
    write(root, {"app.py": PY + f'\nGITHUB_TOKEN = "{TOKEN}"\n'})
    run_git(root, "commit", "-qam", f"add token {TOKEN} by mistake")
    write(
        root, {".env": f"DB_PASSWORD={PASSWORD}\n", "config.py": f'password = "{PASSWORD}"\n' + PY}
    )
    run_git(root, "add", "-f", ".env", "config.py")
    run_git(root, "commit", "-qm", "config")
    write(root, {"node_modules/lib/index.js": "module.exports = 1;\n"})
    run_git(root, "add", "-f", "node_modules")
    run_git(root, "commit", "-qm", "vendor a lib")
    return root


def test_history_records_are_redacted(git_repo: Callable[..., Path]) -> None:
    root = _history_repo(git_repo)
    result = api.build(root, history=True)
    records = api.load_records(root)
    commits = [r for r in records if r["source"] == "commit"]
    assert len(commits) == 4 == result.commit_records
    raw = api.dataset_path(root).read_text()
    assert TOKEN not in raw and PASSWORD not in raw
    by_message = {r["message"].split()[0]: r for r in commits}
    token_commit = by_message["add"]
    assert token_commit["redactions"] >= 2  # in the message and in the diff
    assert "[REDACTED:github_token]" in token_commit["content"]
    config_commit = by_message["config"]
    assert config_commit["files"] == ["config.py"]  # .env left out whole
    assert "DB_PASSWORD" not in config_commit["content"]
    vendor_commit = by_message["vendor"]
    assert vendor_commit["files"] == []
    assert result.skipped["history_section_secret_file"] == 1
    assert result.skipped["history_section_vendored"] == 1
    for r in commits:
        assert r["file_path"] == f"commit:{r['commit']}" and r["language"] == "diff"
        assert set(r) >= {"author_date", "sha256", "size", "mtime", "schema_version"}


def test_history_diff_is_size_capped(git_repo: Callable[..., Path]) -> None:
    from dataset.config import DatasetConfig

    root = git_repo({"big.py": "".join(f"value_{i} = {i}\n" for i in range(3000))})
    api.build(root, history=True, config=DatasetConfig(history_max_diff_bytes=2000))
    (commit,) = [r for r in api.load_records(root) if r["source"] == "commit"]
    assert "[diff truncated]" in commit["content"]
    assert len(commit["content"].encode()) < 2200


def test_history_outside_git_is_noted(tmp_path: Path) -> None:
    write(tmp_path / "ws", {"a.py": PY})
    result = api.build(tmp_path / "ws", history=True)
    assert result.commit_records == 0
    assert result.skipped["history_not_a_repository"] == 1


def test_build_from_local_bare_repo(
    git_repo: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = git_repo({"lib.py": PY, "README.md": "# lib\n", ".env": "X=1\n"}, name="source")
    bare = tmp_path / "remote.git"
    run_git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    work = tmp_path / "work"
    work.mkdir()
    url = bare.as_uri()
    assert url.startswith("file://")
    assert cli.main(["build", str(work), "--repo", url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    dataset = work / ".codellama" / "dataset.jsonl"
    assert str(dataset) in out
    paths = {json.loads(line)["file_path"] for line in dataset.read_text().splitlines()}
    assert paths == {"lib.py", "README.md"}
    clones = list((work / ".codellama" / "repos").iterdir())
    assert len(clones) == 1 and (clones[0] / "lib.py").exists()
    # A new commit upstream: building again fetches it into the same clone.
    write(source, {"more.py": PY})
    run_git(source, "add", "more.py")
    run_git(source, "commit", "-qm", "more")
    run_git(source, "push", "-q", str(bare), "HEAD:main")
    assert cli.main(["build", str(work), "--repo", url, "--no-progress"]) == 0
    paths = {r["file_path"] for r in api.load_records(work)}
    assert paths == {"lib.py", "README.md", "more.py"}


def test_bad_repo_url_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["build", str(tmp_path), "--repo", (tmp_path / "missing.git").as_uri()]) == 2
    assert "cannot clone" in capsys.readouterr().err
