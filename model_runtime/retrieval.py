"""Repository context: an incremental index over the dataset's records, queried at the cursor.

The index holds only what the workspace dataset holds (``dataset.api.load_records`` and the
watcher's change events): ignored, dropped and secret-bearing files never enter it, and secrets
in kept files are already redacted. An edit re-indexes that one file.

What it keeps per file:

- **chunks**: windows of :data:`WINDOW_LINES` lines every :data:`STRIDE_LINES` lines (Copilot
  uses 60-line windows, llama.vim 64-line chunks; ours are shorter because the context budget
  is ~512 tokens, i.e. two or three 20-line windows);
- **definitions**: names bound by ``def`` / ``class`` / ``function`` / ``fn`` / top-level
  assignments, with their line, so a name used near the cursor finds where it is defined;
- **imports**: the modules a file imports, resolved to indexed files (boost, disambiguation).

Scoring is BM25 over each chunk's *set* of identifiers (binary term frequency; chunks are short
enough that repeated names add little). It is our own, on numpy, because the library indexes
are static: ``bm25s`` (sparse matrix) and ``rank-bm25`` must be rebuilt for every edit, which
``bench/retrieval_bench.py`` measures (seconds on the 10k-file tree, per keystroke-save), and
``rank-bm25`` scores every document in Python per query term. Here postings are ``array('i')``
lists of chunk ids per term, appended on insert and tombstoned on removal (compacted when the
dead outnumber the live); a query scatters ``idf`` into a score vector with numpy over the
rarest query terms only (:data:`POSTING_BUDGET` entries), which bounds the time on huge trees.

Retrieval at the cursor (:meth:`RepoIndex.retrieve`): definitions of identifiers used near the
cursor first (nearest use first, a file the current file imports wins an ambiguous name), then
the best BM25 window per other file for the lines before the cursor, boosted for recently used
files and imported files. Never the current file, never a window whose lines are mostly the
cursor's own text (> :data:`MAX_OWN_SIMILARITY`, llama.vim's rule: "they make the model repeat").

Thread-safety: every public method takes the index lock (the watcher thread updates while the
event loop retrieves).
"""

from __future__ import annotations

import math
import posixpath
import re
import threading
import time
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RepoIndex",
    "Snippet",
    "context_for",
    "index_records",
]

WINDOW_LINES = 20
"""Lines per chunk."""
STRIDE_LINES = 10
"""A chunk starts every this many lines (windows overlap by half)."""
DEFINITION_LINES = 24
"""At most this many lines of a definition snippet (the signature and the start of the body)."""
QUERY_LINES = 12
"""Lines before the cursor that form the query (and whose identifiers look up definitions)."""
NEAR_LINES = 6
"""Lines before the cursor whose identifiers count as "used near the cursor"."""
MAX_OWN_SIMILARITY = 0.5
"""Drop a snippet when more than this share of its lines already appear around the cursor."""
POSTING_BUDGET = 40_000
"""Posting entries scored per query at most (rarest query terms first)."""
AMBIGUOUS_DEFINITIONS = 8
"""A name defined in more files than this is ambiguous unless an imported file defines it."""
RECENT_FILES = 20
"""Recently used files remembered for the boost (Copilot looks at ~20 recent files)."""
RECENT_BOOST = 1.5
IMPORT_BOOST = 1.5
MAX_FILE_CHARS = 512_000
"""Larger records are not indexed (the dataset drops files > 512 KB anyway)."""
_K1 = 1.2
_B = 0.75

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFINITION = re.compile(
    r"^(?P<indent>[ \t]*)(?:export\s+)?(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?"
    r"(?:def|class|function\*?|fn|func(?:\s*\([^)]*\))?|struct|enum|trait|interface|type)"
    r"\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
)
_ASSIGNMENT = re.compile(
    r"^(?:(?:export\s+)?(?:const|let|var)\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?::[^=]+)?=[^=]"
)
_PY_IMPORT = re.compile(
    r"^\s*(?:from\s+(?P<from>\.*[\w.]*)\s+import\s+|import\s+(?P<mods>[\w., ]+))"
)
_JS_IMPORT = re.compile(r"""(?:from\s+|require\(\s*|import\s+)['"](?P<mod>[^'"]+)['"]""")
_KEYWORDS = frozenset(
    [
        "def",
        "class",
        "return",
        "if",
        "else",
        "elif",
        "for",
        "while",
        "in",
        "not",
        "and",
        "or",
        "is",
        "none",
        "true",
        "false",
        "import",
        "from",
        "as",
        "with",
        "try",
        "except",
        "finally",
        "raise",
        "pass",
        "break",
        "continue",
        "lambda",
        "yield",
        "async",
        "await",
        "self",
        "cls",
        "function",
        "const",
        "let",
        "var",
        "new",
        "this",
        "null",
        "undefined",
        "fn",
        "pub",
        "struct",
        "impl",
        "use",
        "mod",
        "func",
        "package",
        "int",
        "str",
        "float",
        "bool",
        "list",
        "dict",
        "set",
        "tuple",
        "print",
        "len",
        "range",
    ]
)


@dataclass(frozen=True)
class Snippet:
    """A piece of another file for the prompt."""

    path: str
    """Workspace-relative path of the file it comes from."""
    text: str
    """The lines, each ending with a newline."""
    start_line: int
    """0-based line of the file where ``text`` starts."""
    reason: str
    """``definition`` (of a name used near the cursor) or ``similar`` (BM25 window)."""
    score: float = 0.0
    name: str = ""
    """For definitions: the name looked up."""

    def as_json(self) -> dict[str, Any]:
        """The snippet's source, for ``codellama.status`` (text left out)."""
        lines = self.text.count("\n")
        return {
            "path": self.path,
            "lines": f"{self.start_line + 1}-{self.start_line + lines}",
            "reason": self.reason,
            **({"name": self.name} if self.name else {}),
        }


@dataclass
class _File:
    content: str
    language: str | None
    offsets: array[int]
    """Character offset of each line start, plus ``len(content)``."""
    chunks: list[int] = field(default_factory=list)
    definitions: dict[str, list[int]] = field(default_factory=dict)
    imports: tuple[str, ...] = ()

    @property
    def n_lines(self) -> int:
        return len(self.offsets) - 1

    def lines(self, start: int, end: int) -> str:
        end = min(end, self.n_lines)
        text = self.content[self.offsets[start] : self.offsets[end]]
        return text if text.endswith("\n") or not text else text + "\n"


def identifiers(text: str) -> set[str]:
    """The index's terms of ``text``: identifiers of 2+ characters, lower-cased, no keywords."""
    return {
        w for w in (m.lower() for m in _IDENT.findall(text)) if len(w) > 1 and w not in _KEYWORDS
    }


def _line_offsets(content: str) -> array[int]:
    offsets = array("i", [0])
    offsets.extend(m.end() for m in re.finditer("\n", content))
    if offsets[-1] != len(content):
        offsets.append(len(content))
    return offsets


def _definitions(content: str) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for number, line in enumerate(content.split("\n")):
        match = _DEFINITION.match(line)
        if match is None and line[:1].isalpha():  # top-level assignments only
            match = _ASSIGNMENT.match(line)
        if match is not None:
            found.setdefault(match.group("name"), []).append(number)
    return found


def _imports(content: str, path: str) -> tuple[str, ...]:
    """Module names imported by ``content`` (dotted Python names or JS relative paths)."""
    mods: list[str] = []
    for line in content.split("\n")[:400]:
        if "import" not in line and "require" not in line:
            continue
        match = _PY_IMPORT.match(line)
        if match is not None:
            if match.group("from") is not None:
                mods.append(_resolve_relative(match.group("from"), path))
                names = line.split("import", 1)[1].strip(" ()\\")
                base = mods[-1]
                mods.extend(
                    f"{base}.{n.split(' as ')[0].strip()}" if base else n.strip()
                    for n in names.split(",")
                    if n.strip() and n.strip() != "*"
                )
            else:
                mods.extend(m.split(" as ")[0].strip() for m in match.group("mods").split(","))
            continue
        for js in _JS_IMPORT.finditer(line):
            mod = js.group("mod")
            if mod.startswith("."):
                mod = posixpath.normpath(posixpath.join(posixpath.dirname(path), mod))
            mods.append(mod.replace("/", "."))
    return tuple(m for m in mods if m)


def _resolve_relative(module: str, path: str) -> str:
    dots = len(module) - len(module.lstrip("."))
    if dots == 0:
        return module
    parts = posixpath.dirname(path).split("/") if posixpath.dirname(path) else []
    parts = parts[: len(parts) - (dots - 1)] if dots > 1 else parts
    rest = module[dots:]
    return ".".join([*parts, *([rest] if rest else [])])


def _module_keys(path: str) -> list[str]:
    """Dotted names a file can be imported as (``src/pkg/mod.py`` → ``pkg.mod``, ``mod`` ...)."""
    stem, _ = posixpath.splitext(path)
    parts = stem.split("/")
    if parts[-1] in ("__init__", "index", "mod"):
        parts = parts[:-1]
    return [".".join(parts[i:]) for i in range(len(parts)) if parts[i:]]


class RepoIndex:
    """Chunks, definitions and imports of the dataset's file records; see the module doc."""

    def __init__(self, *, name: str = "") -> None:
        self.name = name
        """Repository name shown in Qwen's ``<|repo_name|>`` line."""
        self._lock = threading.RLock()
        self._files: dict[str, _File] = {}
        self._chunk_path: list[str | None] = []
        self._chunk_start: array[int] = array("i")
        self._chunk_len: array[float] = array("f")
        self._chunk_terms: list[tuple[str, ...]] = []
        self._postings: dict[str, array[int]] = {}
        self._df: dict[str, int] = {}
        self._live = 0
        self._total_len = 0.0
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
            if len(self._chunk_path) > 2 * self._live + 10_000:
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
        info = _File(content, str(language) if language else None, _line_offsets(content))
        lines = content.split("\n")
        # Terms of each stride-block once; a window is the union of two neighbouring blocks.
        blocks = [
            identifiers("\n".join(lines[i : i + STRIDE_LINES]))
            for i in range(0, len(lines), STRIDE_LINES)
        ]
        per_window = max(1, WINDOW_LINES // STRIDE_LINES)
        for b in range(max(1, len(blocks) - per_window + 1)):
            terms = set().union(*blocks[b : b + per_window])
            if terms:
                info.chunks.append(self._add_chunk(path, b * STRIDE_LINES, terms))
        info.definitions = _definitions(content)
        for name, numbers in info.definitions.items():
            self._definitions.setdefault(name, {})[path] = numbers
        info.imports = _imports(content, path)
        for key in _module_keys(path):
            self._modules.setdefault(key, set()).add(path)
        self._files[path] = info
        return True

    def _add_chunk(self, path: str, start: int, terms: set[str]) -> int:
        chunk = len(self._chunk_path)
        self._chunk_path.append(path)
        self._chunk_start.append(start)
        self._chunk_len.append(float(len(terms)))
        ordered = tuple(sorted(terms))
        self._chunk_terms.append(ordered)
        for term in ordered:
            posting = self._postings.get(term)
            if posting is None:
                posting = self._postings[term] = array("i")
            posting.append(chunk)
            self._df[term] = self._df.get(term, 0) + 1
        self._live += 1
        self._total_len += len(terms)
        return chunk

    def _remove(self, path: str) -> None:
        info = self._files.pop(path, None)
        if info is None:
            return
        for chunk in info.chunks:
            self._chunk_path[chunk] = None
            for term in self._chunk_terms[chunk]:
                left = self._df[term] - 1
                if left:
                    self._df[term] = left
                else:
                    del self._df[term]
                    self._postings.pop(term, None)
            self._total_len -= self._chunk_len[chunk]
            self._chunk_terms[chunk] = ()
            self._live -= 1
        for name in info.definitions:
            owners = self._definitions.get(name)
            if owners is not None:
                owners.pop(path, None)
                if not owners:
                    del self._definitions[name]
        for key in _module_keys(path):
            paths = self._modules.get(key)
            if paths is not None:
                paths.discard(path)
                if not paths:
                    del self._modules[key]

    def _compact(self) -> None:
        """Drop tombstoned chunks: renumber the live ones and rebuild the postings."""
        if self._live == len(self._chunk_path):
            return
        old_path, old_start, old_len, old_terms = (
            self._chunk_path, self._chunk_start, self._chunk_len, self._chunk_terms,
        )  # fmt: skip
        self._chunk_path, self._chunk_terms = [], []
        self._chunk_start, self._chunk_len = array("i"), array("f")
        self._postings, self._df = {}, {}
        self._live, self._total_len = 0, 0.0
        renumber: dict[int, int] = {}
        for chunk, path in enumerate(old_path):
            if path is not None:
                renumber[chunk] = self._add_chunk(path, old_start[chunk], set(old_terms[chunk]))
                assert self._chunk_len[renumber[chunk]] == old_len[chunk]
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
                "chunks": self._live,
                "terms": len(self._postings),
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
        own = _own_lines(before[-60:], suffix.split("\n", 20)[:20])
        with self._lock:
            current = self._files.get(path)
            imported = self._imported_files(path, current)
            language = language or (current.language if current is not None else None)
            picked: list[Snippet] = []
            used: set[str] = {path}
            local = set(current.definitions) if current is not None else set()
            local |= set(_definitions("\n".join(before)))
            for snippet in self._definition_snippets(path, before[-NEAR_LINES:], imported, local):
                if len(picked) >= max_definitions:
                    break
                if snippet.path in used or _own_share(snippet.text, own) > MAX_OWN_SIMILARITY:
                    continue
                picked.append(snippet)
                used.add(snippet.path)
            for snippet in self._similar(query_text, used, imported, language, own):
                if len(picked) >= max_snippets:
                    break
                picked.append(snippet)
                used.add(snippet.path)
            return picked

    def _imported_files(self, path: str, current: _File | None) -> set[str]:
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
            for name in reversed(_IDENT.findall(line)):
                if name in seen or name.lower() in _KEYWORDS or name in local or len(name) < 3:
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
                    end = _definition_end(info, start)
                    yield Snippet(owner, info.lines(start, end), start, "definition", name=name)

    def _similar(
        self,
        query_text: str,
        exclude: set[str],
        imported: set[str],
        language: str | None,
        own: set[str],
    ) -> Iterable[Snippet]:
        import numpy as np

        terms = sorted(
            (t for t in identifiers(query_text) if t in self._df), key=lambda t: self._df[t]
        )
        if not terms or self._live == 0:
            return
        n_chunks = len(self._chunk_path)
        scores = np.zeros(n_chunks, dtype=np.float32)
        budget = POSTING_BUDGET
        for term in terms:
            df = self._df[term]
            posting = self._postings[term]
            if len(posting) > budget:
                break
            budget -= len(posting)
            idf = math.log(1.0 + (self._live - df + 0.5) / (df + 0.5))
            scores[np.frombuffer(posting, dtype=np.int32)] += idf
        candidates = np.flatnonzero(scores)
        if candidates.size == 0:
            return
        lengths = np.frombuffer(self._chunk_len, dtype=np.float32)[candidates]
        average = self._total_len / max(self._live, 1)
        norm = (_K1 + 1) / (1 + _K1 * (1 - _B + _B * lengths / max(average, 1.0)))
        ranked = scores[candidates] * norm
        keep = min(200, candidates.size)
        top = np.argpartition(-ranked, keep - 1)[:keep]
        top = top[np.argsort(-ranked[top], kind="stable")]
        best = zip(candidates[top].tolist(), ranked[top].tolist(), strict=True)
        boosted: dict[str, tuple[float, int]] = {}
        for chunk, value in best:
            owner = self._chunk_path[chunk]
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
            start = self._chunk_start[chunk]
            text = self._files[owner].lines(start, start + WINDOW_LINES)
            if _own_share(text, own) > MAX_OWN_SIMILARITY:
                continue
            yield Snippet(owner, text, start, "similar", score=round(score, 3))


def _definition_end(info: _File, start: int) -> int:
    """End line (exclusive) of the definition at ``start``: until the indentation returns."""
    first = info.lines(start, start + 1)
    indent = len(first) - len(first.lstrip())
    end = start + 1
    limit = min(info.n_lines, start + DEFINITION_LINES)
    while end < limit:
        line = info.lines(end, end + 1)
        stripped = line.strip()
        if stripped and len(line) - len(line.lstrip()) <= indent:
            if stripped[:1] in "})]":
                end += 1
            break
        end += 1
    while end > start + 1 and not info.lines(end - 1, end).strip():
        end -= 1
    return end


def _own_lines(before: Sequence[str], after: Sequence[str]) -> set[str]:
    return {line.strip() for line in (*before, *after) if len(line.strip()) > 3}


def _own_share(text: str, own: set[str]) -> float:
    """Share of the snippet's non-trivial lines that already appear around the cursor."""
    lines = [line.strip() for line in text.split("\n") if len(line.strip()) > 3]
    if not lines:
        return 1.0
    return sum(line in own for line in lines) / len(lines)


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
