"""Repository context: an incremental index over the dataset's records, queried at the cursor.

The index holds only what the workspace dataset holds (``dataset.api.load_records`` and the
watcher's change events): ignored, dropped and secret-bearing files never enter it, and secrets
in kept files are already redacted. An edit re-indexes that one file.

Per file it keeps its BM25 windows (:mod:`model_runtime.bm25`), the names it defines and the
modules it imports (:mod:`model_runtime.code_terms`), resolved to indexed files.

Retrieval at the cursor (:meth:`RepoIndex.retrieve`): definitions first -- of the annotated
type of the object before a ``.`` at the cursor (``store: InventoryStore`` ... ``store.``), then
of names used near the cursor (nearest use first; an imported file wins an ambiguous name; a
class as its outline, :func:`~model_runtime.snippets.definition_text`), skipping names the lines
around the cursor bind; a definition in the current file before the prompt's window
(:func:`~model_runtime.snippets.far_part`) is one too. Then the best BM25 window of another
file, boosted for recently used and imported files. Never a window mostly made of the cursor's
own lines (> :data:`MAX_OWN_SIMILARITY`; llama.vim: "they make the model repeat").

Thread-safety: every public method takes the index lock (the watcher thread updates while the
event loop retrieves).
"""

from __future__ import annotations

import itertools
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
    bound_names,
    definitions,
    identifiers,
    imports,
    module_keys,
    receiver_type,
)
from model_runtime.snippets import (
    IndexedFile,
    Snippet,
    definition_text,
    far_part,
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
MAX_SIMILAR = 1
"""BM25 windows per prompt, after the definitions. Bundled Qwen, 100 held-out click holes (dev
set, seed 1; bench/RESULTS.md 2026-12-07), line EM: no context 35.0, four windows 31.2 (the 0.5B
model copies them: ``SUCCESS`` for ``ABORTED``), definitions only 33.8, + one window 32.5. One
is kept for code bases with repeated patterns, where copying one is the right answer."""


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
        max_similar: int | None = None,
    ) -> list[Snippet]:
        """Snippets for a cursor in ``path``, most relevant first: of other indexed files, and
        of the current file's text out of the prompt's sight (see the module doc)."""
        before = prefix.rsplit("\n", 60)  # only the last lines matter (big files: no full split)
        near = before[-60:]  # (before[0] holds all the rest)
        own = own_lines(near, suffix.split("\n", 20)[:20])
        in_sight = bound_names(near)  # a name bound again near the cursor needs no old binding
        far = far_part(prefix, skip=in_sight)
        with self._lock:
            current = self._files.get(path)
            imported = self._imported_files(path, current)
            language = language or (current.language if current is not None else None)
            picked: list[Snippet] = []
            used: set[str] = {path}
            local = in_sight | (set(current.definitions) if current is not None else set())
            found = self._definition_snippets(
                path, before[-NEAR_LINES:], imported, local, far, receiver_type(near)
            )
            for snippet in found:
                if len(picked) >= max_definitions:
                    break
                repeated = snippet.path in used and snippet.path != path  # (path: out of sight)
                if not repeated and own_share(snippet.text, own) <= MAX_OWN_SIMILARITY:
                    picked.append(snippet)
                    used.add(snippet.path)
            query_text = "\n".join(before[-QUERY_LINES:])
            similar = self._similar(query_text, used, imported, language, own)
            limit = MAX_SIMILAR if max_similar is None else max_similar
            picked += itertools.islice(similar, max(0, min(limit, max_snippets - len(picked))))
            return picked

    def _imported_files(self, path: str, current: IndexedFile | None) -> set[str]:
        imports = current.imports if current is not None else ()
        return {p for module in imports for p in self._modules.get(module, ()) if p != path}

    def _definition_snippets(
        self,
        path: str,
        near: Sequence[str],
        imported: set[str],
        local: set[str],
        far: IndexedFile | None = None,
        first: Sequence[str] = (),
    ) -> Iterable[Snippet]:
        """Definitions of ``first`` (the type of the object before a ``.`` at the cursor) and of
        the names used near the cursor, nearest use first: in ``far`` (the current file's text
        before the prompt's window) if defined there, else in other files (``local``: names the
        current file defines elsewhere, in sight or after the cursor, which need no snippet)."""
        seen: set[str] = set()
        used = [name for line in reversed(near) for name in reversed(IDENTIFIER.findall(line))]
        for name in [*first, *used]:
            if name in seen or name.lower() in KEYWORDS or len(name) < 3:
                continue
            seen.add(name)
            if far is not None and name in far.definitions:
                start = far.definitions[name][-1]  # the last binding before the window
                yield Snippet(path, definition_text(far, start), start, "definition", name=name)
                continue
            if name in local:
                continue
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
                yield Snippet(owner, definition_text(info, start), start, "definition", name=name)

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
    max_similar: int | None = None,
) -> list[Snippet]:
    """Snippets for a completion at ``prefix|suffix`` of ``path`` ([] without an index): the one
    call the server, evaluation and the benches share, so all put the same context at a cursor."""
    if index is None:
        return []
    return index.retrieve(
        path,
        prefix,
        suffix,
        language=language,
        max_snippets=max_snippets,
        max_similar=max_similar,
    )


def with_repo_context(
    request: Any, index: RepoIndex | None, *, max_snippets: int = 4, max_similar: int | None = None
) -> Any:
    """``request`` (a :class:`model_runtime.engine.CompletionRequest`) with the snippets
    the server would send for its cursor; unchanged without an index.

    Evaluation (``codellama-eval``) and the benchmarks call this, so a "repo context on" row
    measures the prompts users get; "off" is simply not calling it. ``max_similar`` other than
    ``None`` (the server's :data:`MAX_SIMILAR`) is for benchmark ablations.
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
        max_similar=max_similar,
    )
    return dataclasses.replace(request, snippets=tuple(snippets), repo_name=index.name)
