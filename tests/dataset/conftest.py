"""Fixtures for the dataset tests: throwaway workspaces and git repositories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from dataset_helpers import run_git, write


@pytest.fixture
def git_repo(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a git repository with the given files (committed if ``commit``)."""

    def make(files: dict[str, str | bytes], *, commit: bool = True, name: str = "repo") -> Path:
        root = tmp_path / name
        root.mkdir()
        run_git(root, "init", "-q")
        write(root, files)
        if commit:
            run_git(root, "add", "-A")
            run_git(root, "commit", "-q", "-m", "initial")
        return root

    return make
