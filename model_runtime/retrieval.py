"""Repository context: an incremental index over the dataset's records, queried at the cursor.

The index holds only what the workspace dataset holds (``dataset.api.load_records`` and the
watcher's change events): ignored, dropped and secret-bearing files never enter it, and secrets
in kept files are already redacted. An edit re-indexes that one file.

What it keeps per file: its BM25 windows (:mod:`model_runtime.bm25`), the names it defines
and the modules it imports (:mod:`model_runtime.code_terms`), resolved to indexed files (boost,
disambiguation).

Retrieval at the cursor (:meth:`RepoIndex.retrieve`): definitions of identifiers used near the
cursor first (nearest use first, a file the current file imports wins an ambiguous name), then
the best BM25 window per other file for the lines before the cursor, boosted for recently used
files and imported files. Never the current file, never a window whose lines are mostly the
cursor's own text (> :data:`MAX_OWN_SIMILARITY`, llama.vim's rule: "they make the model repeat").

Thread-safety: every public method takes the index lock (the watcher thread updates while the
event loop retrieves).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from model_runtime.bm25 import STRIDE_LINES, WINDOW_LINES, ChunkIndex, window_terms
from model_runtime.code_terms import (
    IDENTIFIER,
    KEYWORDS,
    definitions,
    identifiers,
    imports,
    module_keys,
)
from model_runtime.snippets import (
    IndexedFile,
    Snippet,
    definition_end,
    line_offsets,
    own_lines,
    own_share,
)

__all__ = [
    "STRIDE_LINES",
    "WINDOW_LINES",
    "RepoIndex",
    "Snippet",
    "context_for",
    "identifiers",
    "index_records",
]

QUERY_LINES = 12
"""Lines before the cursor that form the query (and whose identifiers look up definitions)."""
NEAR_LINES = 6
"""Lines before the cursor whose identifiers count as "used near the cursor"."""
MAX_OWN_SIMILARITY = 0.5
"""Drop a snippet when more than this share of its lines already appear around the cursor."""
AMBIGUOUS_DEFINITIONS = 8
"""A name defined in more files than this is ambiguous unless an imported file defines it."""
RECENT_FILES = 20
"""Recently used files remembered for the boost (Copilot looks at ~20 recent files)."""
RECENT_BOOST = 1.5
IMPORT_BOOST = 1.5
MAX_FILE_CHARS = 512_000
"""Larger records are not indexed (the dataset drops files > 512 KB anyway)."""


class RepoIndex:
    """Chunks, definitions and imports of the dataset's file records; see the module doc."""

    def __init__(self, *, name: str = "") -> None:
        self.name = name
        """Repository name shown in Qwen's ``<|repo_name|>`` line."""
        self._lock = threading.RLock()
        self._files: dict[str, IndexedFile] = {}
        self._chunks = ChunkIndex()
        self._definitions: dict[str, dict[str, list[int]]] = {}
        self._modules: dict[str, set[str]] = {}
        self._recent: OrderedDict[str, float] = OrderedDict()
        self.generation = 0
        """Increases with every change (callers may cache on it)."""
        self.build_seconds = 0.0

    # -- updates ----------------------------------------------------------------------------

    def load(self, records: Iterable[dict[str, Any]]) -> int:
        """Replace the whole index by the file records (commit records are skipped)."""
        started = time.perf_counter()
        with self._lock:
            for path in list(self._files):
                self._remove(path)
            count = 0
            for record in records:
                if self._add_record(record):
                    count += 1
            self._compact()
            self.generation += 1
        self.build_seconds = time.perf_counter() - started
        return count

    def update(self, changed: Iterable[dict[str, Any]], removed: Iterable[str] = ()) -> None:
        """Re-index the changed records' files and forget the removed paths (one file each)."""
        with self._lock:
            for path in removed:
                self._remove(path)
            for record in changed:
                self._add_record(record)
            if self._chunks.needs_compaction:
                self._compact()
            self.generation += 1

    def set_file(self, path: str, content: str, language: str | None = None) -> None:
        """Index (or re-index) one file's text."""
        self.update([{"file_path": path, "content": content, "language": language}])

    def remove_file(self, path: str) -> None:
        """Forget one file."""
        self.update((), [path])

    def touch(self, path: str) -> None:
        """Mark ``path`` as recently used (opened, edited, completed in)."""
        with self._lock:
            self._recent.pop(path, None)
            self._recent[path] = time.monotonic()
            while len(self._recent) > RECENT_FILES:
                self._recent.popitem(last=False)

    def _add_record(self, record: dict[str, Any]) -> bool:
        path = str(record.get("file_path") or "")
        content = record.get("content")
        if record.get("source", "file") != "file" or not path or not isinstance(content, str):
            return False
        self._remove(path)
        if not content.strip() or len(content) > MAX_FILE_CHARS:
            return False
        language = record.get("language")
        info = IndexedFile(content, str(language) if language else None, line_offsets(content))
        for start, terms in window_terms(content.split("\n")):
            info.chunks.append(self._chunks.add(path, start, terms))
        info.definitions = definitions(content)
        for name, numbers in info.definitions.items():
            self._definitions.setdefault(name, {})[path] = numbers
        info.imports = imports(content, path)
        for key in module_keys(path):
            self._modules.setdefault(key, set()).add(path)
        self._files[path] = info
        return True

    def _remove(self, path: str) -> None:
        info = self._files.pop(path, None)
        if info is None:
            return
        for chunk in info.chunks:
            self._chunks.remove(chunk)
        for name in info.definitions:
            owners = self._definitions.get(name)
            if owners is not None:
                owners.pop(path, None)
                if not owners:
                    del self._definitions[name]
        for key in module_keys(path):
            paths = self._modules.get(key)
            if paths is not None:
                paths.discard(path)
                if not paths:
                    del self._modules[key]

    def _compact(self) -> None:
        """Drop tombstoned chunks (renumbered: each file's chunk ids follow)."""
        renumber = self._chunks.compact()
        if not renumber:
            return
        for info in self._files.values():
            info.chunks = [renumber[c] for c in info.chunks]

    # -- queries ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._files)

    def __contains__(self, path: object) -> bool:
        return path in self._files

    def paths(self) -> list[str]:
        """Indexed paths, sorted."""
        with self._lock:
            return sorted(self._files)

    def stats(self) -> dict[str, Any]:
        """Size of the index (for ``codellama.status`` and the bench)."""
        with self._lock:
            return {
                "files": len(self._files),
                "chunks": self._chunks.live,
                "terms": self._chunks.n_terms,
                "definitions": len(self._definitions),
                "generation": self.generation,
                "buildSeconds": round(self.build_seconds, 3),
            }

    def retrieve(
        self,
        path: str,
        prefix: str,
        suffix: str = "",
        *,
        language: str | None = None,
        max_snippets: int = 4,
        max_definitions: int = 2,
    ) -> list[Snippet]:
        """Snippets of *other* indexed files for a cursor in ``path``, most relevant first."""
        before = prefix.rsplit("\n", 60)  # only the last lines matter (big files: no full split)
        query_text = "\n".join(before[-QUERY_LINES:])
        own = own_lines(before[-60:], suffix.split("\n", 20)[:20])
        with self._lock:
            current = self._files.get(path)
            imported = self._imported_files(path, current)
            language = language or (current.language if current is not None else None)
            picked: list[Snippet] = []
            used: set[str] = {path}
            local = set(current.definitions) if current is not None else set()
            local |= set(definitions("\n".join(before)))
            for snippet in self._definition_snippets(path, before[-NEAR_LINES:], imported, local):
                if len(picked) >= max_definitions:
                    break
                if snippet.path in used or own_share(snippet.text, own) > MAX_OWN_SIMILARITY:
                    continue
                picked.append(snippet)
                used.add(snippet.path)
            for snippet in self._similar(query_text, used, imported, language, own):
                if len(picked) >= max_snippets:
                    break
                picked.append(snippet)
                used.add(snippet.path)
            return picked

    def _imported_files(self, path: str, current: IndexedFile | None) -> set[str]:
        if current is None:
            return set()
        found: set[str] = set()
        for module in current.imports:
            found |= self._modules.get(module, set())
        found.discard(path)
        return found

    def _definition_snippets(
        self, path: str, near: Sequence[str], imported: set[str], local: set[str]
    ) -> Iterable[Snippet]:
        """Definitions in other files of the names used near the cursor, nearest use first
        (``local``: names the current file defines itself, which need no snippet)."""
        seen: set[str] = set()
        for line in reversed(near):
            for name in reversed(IDENTIFIER.findall(line)):
                if name in seen or name.lower() in KEYWORDS or name in local or len(name) < 3:
                    continue
                seen.add(name)
                owners = self._definitions.get(name)
                if not owners:
                    continue
                candidates = [p for p in owners if p != path]
                preferred = [p for p in candidates if p in imported]
                if preferred:
                    candidates = preferred
                elif len(candidates) > AMBIGUOUS_DEFINITIONS:
                    continue
                for owner in sorted(candidates, key=lambda p: (p not in self._recent, p))[:1]:
                    info = self._files[owner]
                    start = owners[owner][0]
                    end = definition_end(info, start)
                    yield Snippet(owner, info.lines(start, end), start, "definition", name=name)

    def _similar(
        self,
        query_text: str,
        exclude: set[str],
        imported: set[str],
        language: str | None,
        own: set[str],
    ) -> Iterable[Snippet]:
        best = self._chunks.rank(identifiers(query_text))
        boosted: dict[str, tuple[float, int]] = {}
        for chunk, value in best:
            owner = self._chunks.path[chunk]
            if owner is None or owner in exclude:
                continue
            info = self._files[owner]
            if language and info.language and info.language != language:
                continue
            score = value * (RECENT_BOOST if owner in self._recent else 1.0)
            score *= IMPORT_BOOST if owner in imported else 1.0
            if owner not in boosted or boosted[owner][0] < score:
                boosted[owner] = (score, chunk)
        for owner, (score, chunk) in sorted(boosted.items(), key=lambda kv: -kv[1][0]):
            start = self._chunks.start[chunk]
            text = self._files[owner].lines(start, start + WINDOW_LINES)
            if own_share(text, own) > MAX_OWN_SIMILARITY:
                continue
            yield Snippet(owner, text, start, "similar", score=round(score, 3))


def repo_name_for(source: str | Path) -> str:
    """The repository name the server shows the model (``<|repo_name|>``) for a workspace, its
    dataset directory or its records file: the workspace folder's name (``W``,
    ``W/.codellama`` and ``W/.codellama/dataset.jsonl`` all give ``W``)."""
    path = Path(source).expanduser().resolve()
    if path.suffix == ".jsonl":
        path = path.parent
    if path.name.startswith("."):
        path = path.parent
    return path.name


def index_records(records: Iterable[dict[str, Any]], *, name: str = "") -> RepoIndex:
    """A :class:`RepoIndex` over ``records`` (e.g. ``dataset.api.load_records(workspace)``)."""
    index = RepoIndex(name=name)
    index.load(records)
    return index


def context_for(
    index: RepoIndex | None,
    path: str,
    prefix: str,
    suffix: str = "",
    *,
    language: str | None = None,
    max_snippets: int = 4,
) -> list[Snippet]:
    """Snippets for a completion at ``prefix|suffix`` of ``path`` ([] without an index).

    The one call the server, evaluation and the benchmarks share, so all of them put the same
    context in front of the same cursor.
    """
    if index is None:
        return []
    return index.retrieve(path, prefix, suffix, language=language, max_snippets=max_snippets)


def with_repo_context(request: Any, index: RepoIndex | None, *, max_snippets: int = 4) -> Any:
    """``request`` (a :class:`model_runtime.engine.CompletionRequest`) with the snippets
    the server would send for its cursor; unchanged without an index.

    Evaluation (``codellama-eval``) and the benchmarks call this, so a "repo context on" row
    measures the prompts users get; "off" is simply not calling it.
    """
    import dataclasses

    if index is None or len(index) == 0:
        return request
    snippets = context_for(
        index,
        request.path,
        request.prefix,
        request.suffix,
        language=request.language,
        max_snippets=max_snippets,
    )
    return dataclasses.replace(request, snippets=tuple(snippets), repo_name=index.name)
