"""Git-style ignore rules (``.gitignore``, ``.git/info/exclude``, ``.codellamaignore``).

Matching uses pathspec's ``GitIgnoreSpec`` per ignore file, evaluated like git: a deeper file
overrides a shallower one, the last matching line of a file wins, and nothing inside an excluded
directory can be re-included. Decisions for directories are cached, so events under an ignored
tree cost a dictionary lookup.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pathspec import GitIgnoreSpec

log = logging.getLogger(__name__)


def _read_spec(path: Path) -> GitIgnoreSpec | None:
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    except OSError as exc:
        log.warning("cannot read ignore file %s: %s", path, exc)
        return None
    lines = data.decode("utf-8", "replace").splitlines()
    return GitIgnoreSpec.from_lines(lines) if any(line.strip() for line in lines) else None


class IgnoreMatcher:
    """Ignore decisions for paths relative to ``root`` (a directory holding ignore files).

    ``filename`` is the per-directory file (``.gitignore`` or ``.codellamaignore``); ``base``
    are lower-precedence specs (global excludes, ``.git/info/exclude``) rooted at ``root``.
    """

    def __init__(self, root: Path, filename: str, base: list[GitIgnoreSpec] | None = None) -> None:
        self.root = root
        self.filename = filename
        self.base = list(base or [])
        self._specs: dict[str, GitIgnoreSpec | None] = {}
        self._dirs: dict[str, bool] = {}

    def invalidate(self) -> None:
        """Forget cached rules and decisions (an ignore file changed)."""
        self._specs.clear()
        self._dirs.clear()

    def _spec(self, directory: str) -> GitIgnoreSpec | None:
        if directory not in self._specs:
            path = self.root / directory / self.filename if directory else self.root / self.filename
            self._specs[directory] = _read_spec(path)
        return self._specs[directory]

    def _match(self, rel: str, is_dir: bool) -> bool:
        parts = rel.split("/")
        # Deepest ignore file first: the first one with an opinion decides.
        for depth in range(len(parts) - 1, -1, -1):
            directory = "/".join(parts[:depth])
            spec = self._spec(directory)
            if spec is None:
                continue
            sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
            result = spec.check_file(sub)
            if result.include is not None:
                return bool(result.include)
        sub = rel + ("/" if is_dir else "")
        for spec in reversed(self.base):
            result = spec.check_file(sub)
            if result.include is not None:
                return bool(result.include)
        return False

    def dir_ignored(self, rel_dir: str) -> bool:
        """Whether a directory (or one of its parents) is excluded."""
        if not rel_dir:
            return False
        cached = self._dirs.get(rel_dir)
        if cached is None:
            parent = rel_dir.rsplit("/", 1)[0] if "/" in rel_dir else ""
            cached = self.dir_ignored(parent) or self._match(rel_dir, True)
            self._dirs[rel_dir] = cached
        return cached

    def ignored(self, rel: str, is_dir: bool = False) -> bool:
        """Whether ``rel`` is excluded, its parents included."""
        if is_dir:
            return self.dir_ignored(rel)
        parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
        return self.dir_ignored(parent) or self._match(rel, False)


def git_base_specs(git_dir: Path, work_tree: Path) -> list[GitIgnoreSpec]:
    """``core.excludesFile`` (or the XDG default) then ``.git/info/exclude``."""
    specs: list[GitIgnoreSpec] = []
    excludes = _global_excludes_file(work_tree)
    for path in (excludes, git_dir / "info" / "exclude"):
        if path is not None:
            spec = _read_spec(path)
            if spec is not None:
                specs.append(spec)
    return specs


def _global_excludes_file(work_tree: Path) -> Path | None:
    try:
        import git

        value = git.Git(str(work_tree)).config("--get", "core.excludesFile")
        if value:
            return Path(os.path.expanduser(value.strip()))
    except Exception:
        pass
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(xdg) / "git" / "ignore"
