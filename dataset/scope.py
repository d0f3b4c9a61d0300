"""Which files are in scope: git's view (``git ls-files -co --exclude-standard``) in a
repository, ``.gitignore`` rules via pathspec elsewhere, ``.codellamaignore`` on top of both.

Listing in a repository asks git itself (through gitpython), so it is exactly what
``git ls-files -co --exclude-standard`` prints. Single-path decisions (the watcher) use the same
rules through :class:`~dataset.ignore.IgnoreMatcher` plus git's list of tracked files; the tests
check both against real ``git``.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from pathspec import GitIgnoreSpec

from dataset.ignore import IgnoreMatcher, git_base_specs

log = logging.getLogger(__name__)

ALWAYS_EXCLUDED_DIRS = frozenset({".git", ".hg", ".svn"})


@dataclass
class Listing:
    """Paths in scope (workspace-relative POSIX) and what was skipped while listing."""

    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    """``(path, reason, detail)`` for directories or names that could not be listed."""


def display_path(path: str) -> str:
    """A printable, UTF-8-safe version of a path that may hold undecodable bytes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def name_decodable(path: str) -> bool:
    """False for names with bytes that are not UTF-8 (they cannot go into JSON)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Scope:
    """The rules deciding which workspace files are dataset candidates."""

    def __init__(self, workspace: Path, excluded: list[Path], extra_ignores: tuple[str, ...] = ()):
        self.root = workspace
        self.notes: list[tuple[str, str]] = []
        self.excluded_prefixes = tuple(
            _rel_or_none(workspace, p) + "/" for p in excluded if _rel_or_none(workspace, p)
        )
        self.mode = "walk"
        self.repo_root: Path | None = None
        self.prefix = ""
        self.tracked: set[str] = set()
        self.tracked_dirs: set[str] = set()
        self.tracked_stale = False
        self._detect_git()
        base = [GitIgnoreSpec.from_lines(list(extra_ignores))] if extra_ignores else []
        self.codellama = IgnoreMatcher(workspace, ".codellamaignore", base)
        self.gitignore: IgnoreMatcher
        if self.mode == "git":
            assert self.repo_root is not None
            self.gitignore = IgnoreMatcher(
                self.repo_root,
                ".gitignore",
                git_base_specs(self.repo_root / ".git", self.repo_root),
            )
        else:
            self.gitignore = IgnoreMatcher(workspace, ".gitignore")

    # -- git detection -------------------------------------------------------------------
    def _detect_git(self) -> None:
        if not any((p / ".git").exists() for p in (self.root, *self.root.parents)):
            # No repository anywhere above: skip importing gitpython (~0.5 s) altogether.
            self.notes.append(("not_a_git_repository", "walking the tree; .gitignore applies"))
            return
        try:
            import git

            repo = git.Repo(str(self.root), search_parent_directories=True)
            work_tree = repo.working_tree_dir
            if work_tree is None:
                raise git.InvalidGitRepositoryError("bare repository")
            repo_root = Path(work_tree).resolve()
            self.repo_root = repo_root
            prefix = self.root.relative_to(repo_root).as_posix()
            self.prefix = "" if prefix == "." else prefix + "/"
            if self.prefix and self._ignored_by_enclosing_repo():
                # git would list nothing here; the user asked for this directory, so walk it.
                self.notes.append(
                    ("workspace_ignored_by_enclosing_repo", f"{repo_root} ignores it; walking it")
                )
                self.repo_root = None
                self.prefix = ""
                return
            self.mode = "git"
            self.refresh_tracked()
        except Exception as exc:
            name = type(exc).__name__
            if (
                name in ("InvalidGitRepositoryError", "NoSuchPathError")
                and not (self.root / ".git").exists()
            ):
                self.notes.append(("not_a_git_repository", "walking the tree; .gitignore applies"))
            else:
                self.notes.append(("broken_git", f"{name}: {exc}"[:300]))
                log.warning("git unusable in %s (%s); walking the tree instead", self.root, exc)
            self.mode = "walk"
            self.repo_root = None
            self.prefix = ""

    def _ignored_by_enclosing_repo(self) -> bool:
        import git

        try:
            git.Git(str(self.root)).execute(["git", "check-ignore", "-q", "."])
        except git.GitCommandError:
            return False  # exit status 1: not ignored
        return True

    def _git(self, *args: str) -> list[str]:
        import git

        out = git.Git(str(self.root)).execute(
            ["git", "-c", "core.quotepath=off", *args], stdout_as_string=False
        )
        assert isinstance(out, bytes)
        return [os.fsdecode(p) for p in out.split(b"\0") if p]

    def refresh_tracked(self) -> None:
        """Reload git's list of tracked files (after the index changed)."""
        self.tracked = set(self._git("ls-files", "-z", "-c"))
        dirs: set[str] = set()
        for path in self.tracked:
            while "/" in path:
                path = path.rsplit("/", 1)[0]
                if path in dirs:
                    break
                dirs.add(path)
        self.tracked_dirs = dirs
        self.tracked_stale = False

    def invalidate_rules(self) -> None:
        """An ignore file changed: forget cached decisions."""
        self.gitignore.invalidate()
        self.codellama.invalidate()

    # -- decisions -----------------------------------------------------------------------
    def _excluded(self, rel: str) -> bool:
        first = rel.split("/", 1)[0]
        if first in ALWAYS_EXCLUDED_DIRS or "/.git/" in rel or rel.endswith("/.git"):
            return True
        return rel.startswith(self.excluded_prefixes) or (rel + "/") in self.excluded_prefixes

    def in_scope(self, rel: str) -> bool:
        """Whether one file is a dataset candidate under the current rules."""
        if self._excluded(rel) or self.codellama.ignored(rel):
            return False
        if self.mode == "git":
            if self.tracked_stale:
                self.refresh_tracked()
            if rel in self.tracked:
                return True
            return not self.gitignore.ignored(self.prefix + rel)
        return not self.gitignore.ignored(rel)

    def quick_ignored_dir(self, rel_dir: str) -> bool:
        """True when every event under ``rel_dir`` can be dropped without further work."""
        if self._excluded(rel_dir) or self.codellama.dir_ignored(rel_dir):
            return True
        if self.mode == "git":
            # Tracked files inside an ignored directory are still in scope.
            return self.gitignore.dir_ignored(self.prefix + rel_dir) and not self._has_tracked(
                rel_dir
            )
        return self.gitignore.dir_ignored(rel_dir)

    def _has_tracked(self, rel_dir: str) -> bool:
        return rel_dir in self.tracked_dirs

    # -- listing -------------------------------------------------------------------------
    def list_files(self, subdir: str = "") -> Listing:
        """Every candidate file (under ``subdir`` if given), sorted."""
        listing = Listing()
        if self.mode == "git":
            try:
                args = ["ls-files", "-z", "-co", "--exclude-standard"]
                if subdir:
                    args += ["--", subdir]
                paths = self._git(*args)
            except Exception as exc:
                self.notes.append(("broken_git", f"{type(exc).__name__}: {exc}"[:300]))
                self.mode = "walk"
                self.gitignore = IgnoreMatcher(self.root, ".gitignore")
                return self.list_files(subdir)
            for rel in paths:
                if not self._excluded(rel) and not self.codellama.ignored(rel):
                    listing.files.append(rel)
        else:
            self._walk(subdir, listing)
        listing.files.sort()
        return listing

    def _walk(self, subdir: str, listing: Listing) -> None:
        stack = [subdir]
        while stack:
            rel_dir = stack.pop()
            full = self.root / rel_dir if rel_dir else self.root
            try:
                with os.scandir(full) as it:
                    entries = list(it)
            except FileNotFoundError:
                listing.skipped.append((rel_dir, "vanished", "directory disappeared while listing"))
                continue
            except PermissionError as exc:
                listing.skipped.append((rel_dir, "permission_denied", str(exc)))
                continue
            except OSError as exc:
                listing.skipped.append((rel_dir, "unreadable", str(exc)))
                continue
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    is_dir = False
                if is_dir:
                    if (
                        entry.name not in ALWAYS_EXCLUDED_DIRS
                        and not self._excluded(rel)
                        and not self.codellama.dir_ignored(rel)
                        and not self.gitignore.dir_ignored(rel)
                    ):
                        stack.append(rel)
                elif not self._excluded(rel) and not self.in_scope(rel):
                    continue
                elif not self._excluded(rel):
                    listing.files.append(rel)


def _rel_or_none(root: Path, path: Path) -> str:
    try:
        rel = path.resolve().relative_to(root).as_posix()
    except ValueError:
        return ""
    return "" if rel == "." else rel


def is_regular(mode: int) -> bool:
    """True for a regular file mode."""
    return stat.S_ISREG(mode)
