"""``--repo URL``: clone (or update) a repository into the state dir and build from it."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dataset.builder import ProgressFn

log = logging.getLogger(__name__)


def clone_dir(state: Path, url: str) -> Path:
    """Where ``url`` is cloned: ``<state>/repos/<name>-<hash>``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", url.rstrip("/").rsplit("/", 1)[-1]).removesuffix(".git")
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return state / "repos" / f"{name or 'repo'}-{digest}"


def clone_or_update(url: str, state: Path, progress: ProgressFn | None = None) -> Path:
    """Clone ``url`` (or fetch and reset an earlier clone) and return the working tree."""
    import git

    target = clone_dir(state, url)
    if progress:
        progress(0, None, f"cloning {url}")
    if (target / ".git").is_dir():
        try:
            repo = git.Repo(str(target))
            repo.remotes.origin.fetch()
            repo.git.reset("--hard", "FETCH_HEAD")
            return target
        except Exception as exc:
            log.warning("re-cloning %s: %s", url, exc)
            import shutil

            shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        git.Repo.clone_from(url, str(target))
    except git.GitCommandError as exc:
        raise RuntimeError(f"cannot clone {url}: {exc.stderr.strip() or exc}") from exc
    return target
