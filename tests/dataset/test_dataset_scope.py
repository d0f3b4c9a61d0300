"""Scope parity with real git, .gitignore outside git, .codellamaignore, symlinks."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from dataset_helpers import PY, run_git, write

from dataset import api
from dataset.scope import Scope

FIXTURE: dict[str, str | bytes] = {
    ".gitignore": "*.log\nbuild/\n/secret_dir/\n!keep.log\ndocs/*.md\n!docs/README.md\n*.tmp\n",
    "app.py": PY,
    "debug.log": "log\n",
    "keep.log": "keep\n",
    "build/out.py": PY,
    "secret_dir/x.py": PY,
    "docs/guide.md": "# guide\n",
    "docs/README.md": "# readme\n",
    "pkg/__init__.py": PY,
    "pkg/.gitignore": "generated_*.py\n!generated_keep.py\nlocal/\n",
    "pkg/generated_a.py": PY,
    "pkg/generated_keep.py": PY,
    "pkg/local/x.py": PY,
    "pkg/sub/deep.py": PY,
    "pkg/sub/.gitignore": "*.py\n!deep.py\n",
    "pkg/sub/other.py": PY,
    "pkg/sub/notes.tmp": "tmp\n",
    "excluded_by_info.py": PY,
    "nested/secret_dir/y.py": PY,  # "/secret_dir/" is anchored: this one stays
    "nested/build/z.py": PY,  # "build/" is not anchored: ignored
    "weird name ü.py": PY,
    "tracked_but_ignored.log": "tracked\n",
}


def _fixture_repo(git_repo: Callable[..., Path]) -> Path:
    root = git_repo({}, commit=False)
    write(root, FIXTURE)
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("excluded_by_info.py\n")
    run_git(root, "add", "app.py", ".gitignore")
    run_git(root, "add", "-f", "tracked_but_ignored.log")
    run_git(root, "commit", "-q", "-m", "init")
    return root


def _git_ls(root: Path) -> set[str]:
    out = run_git(root, "-c", "core.quotepath=off", "ls-files", "-z", "-co", "--exclude-standard")
    return {p for p in out.split("\0") if p}


def test_listing_equals_git_ls_files(git_repo: Callable[..., Path]) -> None:
    root = _fixture_repo(git_repo)
    scope = Scope(root, [root / ".codellama"])
    assert scope.mode == "git"
    expected = _git_ls(root)
    assert set(scope.list_files().files) == expected
    # Sanity: the fixture exercises nested, negated, anchored and info/exclude rules.
    assert "keep.log" in expected and "debug.log" not in expected
    assert "pkg/generated_keep.py" in expected and "pkg/generated_a.py" not in expected
    assert "pkg/sub/deep.py" in expected and "pkg/sub/other.py" not in expected
    assert "excluded_by_info.py" not in expected
    assert "nested/secret_dir/y.py" in expected and "nested/build/z.py" not in expected
    assert "tracked_but_ignored.log" in expected


def test_single_path_rules_match_git(git_repo: Callable[..., Path]) -> None:
    """The watcher's per-path decisions agree with git for every fixture file."""
    root = _fixture_repo(git_repo)
    scope = Scope(root, [root / ".codellama"])
    expected = _git_ls(root)
    for rel in FIXTURE:
        assert scope.in_scope(rel) == (rel in expected), rel


def test_workspace_in_a_subdirectory(git_repo: Callable[..., Path]) -> None:
    root = _fixture_repo(git_repo)
    sub = root / "pkg"
    scope = Scope(sub, [sub / ".codellama"])
    expected = {p.removeprefix("pkg/") for p in _git_ls(root) if p.startswith("pkg/")}
    assert set(scope.list_files().files) == expected
    for rel in ("generated_a.py", "generated_keep.py", "sub/deep.py", "sub/other.py", "local/x.py"):
        assert scope.in_scope(rel) == (rel in expected), rel


def test_gitignore_outside_git(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    write(root, FIXTURE)
    scope = Scope(root, [root / ".codellama"])
    assert scope.mode == "walk"
    files = set(scope.list_files().files)
    # Same rules as git minus git-only sources (info/exclude, tracked files).
    assert (
        "keep.log" in files and "debug.log" not in files and "tracked_but_ignored.log" not in files
    )
    assert "pkg/generated_keep.py" in files and "pkg/generated_a.py" not in files
    assert "pkg/sub/deep.py" in files and "pkg/sub/other.py" not in files
    assert "build/out.py" not in files and "nested/build/z.py" not in files
    assert "nested/secret_dir/y.py" in files and "secret_dir/x.py" not in files
    assert "excluded_by_info.py" in files
    assert scope.notes and scope.notes[0][0] == "not_a_git_repository"


def test_walk_mode_matches_git_without_info_exclude(
    git_repo: Callable[..., Path], tmp_path: Path
) -> None:
    """Parity of the pathspec matcher with git on the same tree (no info/exclude, no index)."""
    plain = tmp_path / "plain"
    write(plain, FIXTURE)
    repo = git_repo({}, commit=False, name="fresh")
    write(repo, FIXTURE)
    assert set(Scope(plain, []).list_files().files) == _git_ls(repo)


def test_codellamaignore_adds_excludes(git_repo: Callable[..., Path]) -> None:
    root = git_repo({"a.py": PY, "b.py": PY, "gen/c.py": PY, ".codellamaignore": "b.py\ngen/\n"})
    scope = Scope(root, [])
    assert set(scope.list_files().files) == {"a.py", ".codellamaignore"}
    assert not scope.in_scope("gen/c.py")


def test_state_dir_never_in_scope(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    write(root, {"a.py": PY})
    api.build(root)
    assert (root / ".codellama" / ".gitignore").read_text().strip().endswith("*")
    again = api.build(root)
    paths = {r["file_path"] for r in api.load_records(root)}
    assert paths == {"a.py"}
    assert again.files_listed == 1


def test_symlinks_leaving_the_workspace_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, {"private.py": PY, "dir/inner.py": PY})
    root = tmp_path / "ws"
    write(root, {"a.py": PY})
    os.symlink(outside / "private.py", root / "link.py")
    os.symlink(outside / "dir", root / "linkdir")
    os.symlink(root / "a.py", root / "inside_link.py")
    result = api.build(root)
    paths = {r["file_path"] for r in api.load_records(root)}
    assert paths == {"a.py", "inside_link.py"}
    assert result.dropped["symlink_outside"] == 1
    assert "linkdir/inner.py" not in paths


def test_workspace_ignored_by_enclosing_repo_is_walked(git_repo: Callable[..., Path]) -> None:
    root = git_repo({".gitignore": "vendored_ws/\n", "top.py": PY})
    write(root / "vendored_ws", {"a.py": PY, ".gitignore": "b.py\n", "b.py": PY})
    scope = Scope(root / "vendored_ws", [])
    assert scope.mode == "walk"
    assert scope.notes[0][0] == "workspace_ignored_by_enclosing_repo"
    assert set(scope.list_files().files) == {"a.py", ".gitignore"}
