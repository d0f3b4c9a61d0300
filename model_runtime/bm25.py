"""BM25 over overlapping line windows ("chunks"), updated in place: the repository index's
similarity search (:class:`model_runtime.retrieval.RepoIndex` owns one :class:`ChunkIndex`).

A file becomes windows of :data:`WINDOW_LINES` lines every :data:`STRIDE_LINES` lines (Copilot
uses 60-line windows, llama.vim 64-line chunks; ours are shorter because the context budget is
~512 tokens, i.e. two or three 20-line windows).

Scoring is BM25 over each chunk's *set* of identifiers (binary term frequency; chunks are short
enough that repeated names add little). It is our own, on numpy, because the library indexes
are static: ``bm25s`` (sparse matrix) and ``rank-bm25`` must be rebuilt for every edit, which
``bench/retrieval_bench.py`` measures (seconds on the 10k-file tree, per keystroke-save), and
``rank-bm25`` scores every document in Python per query term. Here postings are ``array('i')``
lists of chunk ids per term, appended on insert and tombstoned on removal (compacted when the
dead outnumber the live); a query scatters ``idf`` into a score vector with numpy over the
rarest query terms only (:data:`POSTING_BUDGET` entries), which bounds the time on huge trees.

Not thread-safe by itself: the owning index holds the lock.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable

from model_runtime.code_terms import identifiers

WINDOW_LINES = 20
"""Lines per chunk."""
STRIDE_LINES = 10
"""A chunk starts every this many lines (windows overlap by half)."""
POSTING_BUDGET = 40_000
"""Posting entries scored per query at most (rarest query terms first)."""
RANKED_CHUNKS = 200
"""Chunks a query returns at most (best first)."""
_K1 = 1.2
_B = 0.75


def window_terms(lines: list[str]) -> Iterable[tuple[int, set[str]]]:
    """``(start line, terms)`` of each window of ``lines`` that has any terms."""
    # Terms of each stride-block once; a window is the union of two neighbouring blocks.
    blocks = [
        identifiers("\n".join(lines[i : i + STRIDE_LINES]))
        for i in range(0, len(lines), STRIDE_LINES)
    ]
    per_window = max(1, WINDOW_LINES // STRIDE_LINES)
    for b in range(max(1, len(blocks) - per_window + 1)):
        terms = set().union(*blocks[b : b + per_window])
        if terms:
            yield b * STRIDE_LINES, terms


class ChunkIndex:
    """Chunks (path, start line, term set) with postings and document frequencies."""

    def __init__(self) -> None:
        self.path: list[str | None] = []
        """Path of each chunk id (``None``: removed, a tombstone until :meth:`compact`)."""
        self.start: array[int] = array("i")
        """First line of each chunk."""
        self._len: array[float] = array("f")
        self._terms: list[tuple[str, ...]] = []
        self._postings: dict[str, array[int]] = {}
        self._df: dict[str, int] = {}
        self.live = 0
        """Chunks not removed."""
        self._total_len = 0.0

    @property
    def n_terms(self) -> int:
        """Distinct terms of the live chunks."""
        return len(self._postings)

    @property
    def needs_compaction(self) -> bool:
        """Whether the tombstones outnumber the live chunks (by a margin)."""
        return len(self.path) > 2 * self.live + 10_000

    def add(self, path: str, start: int, terms: set[str]) -> int:
        """Add one chunk; returns its id."""
        chunk = len(self.path)
        self.path.append(path)
        self.start.append(start)
        self._len.append(float(len(terms)))
        ordered = tuple(sorted(terms))
        self._terms.append(ordered)
        for term in ordered:
            posting = self._postings.get(term)
            if posting is None:
                posting = self._postings[term] = array("i")
            posting.append(chunk)
            self._df[term] = self._df.get(term, 0) + 1
        self.live += 1
        self._total_len += len(terms)
        return chunk

    def remove(self, chunk: int) -> None:
        """Tombstone one chunk (its postings stay until :meth:`compact`; its terms' ``df`` drop)."""
        self.path[chunk] = None
        for term in self._terms[chunk]:
            left = self._df[term] - 1
            if left:
                self._df[term] = left
            else:
                del self._df[term]
                self._postings.pop(term, None)
        self._total_len -= self._len[chunk]
        self._terms[chunk] = ()
        self.live -= 1

    def compact(self) -> dict[int, int]:
        """Drop tombstoned chunks: renumber the live ones and rebuild the postings.

        Returns old id → new id of every live chunk (empty when nothing was removed).
        """
        if self.live == len(self.path):
            return {}
        old_path, old_start, old_len, old_terms = self.path, self.start, self._len, self._terms
        self.path, self._terms = [], []
        self.start, self._len = array("i"), array("f")
        self._postings, self._df = {}, {}
        self.live, self._total_len = 0, 0.0
        renumber: dict[int, int] = {}
        for chunk, path in enumerate(old_path):
            if path is not None:
                renumber[chunk] = self.add(path, old_start[chunk], set(old_terms[chunk]))
                assert self._len[renumber[chunk]] == old_len[chunk]
        return renumber

    def rank(self, query_terms: set[str]) -> list[tuple[int, float]]:
        """``(chunk id, BM25 score)`` of the best :data:`RANKED_CHUNKS` chunks, best first."""
        import numpy as np

        terms = sorted((t for t in query_terms if t in self._df), key=lambda t: self._df[t])
        if not terms or self.live == 0:
            return []
        scores = np.zeros(len(self.path), dtype=np.float32)
        budget = POSTING_BUDGET
        for term in terms:
            df = self._df[term]
            posting = self._postings[term]
            if len(posting) > budget:
                break
            budget -= len(posting)
            idf = math.log(1.0 + (self.live - df + 0.5) / (df + 0.5))
            scores[np.frombuffer(posting, dtype=np.int32)] += idf
        candidates = np.flatnonzero(scores)
        if candidates.size == 0:
            return []
        lengths = np.frombuffer(self._len, dtype=np.float32)[candidates]
        average = self._total_len / max(self.live, 1)
        norm = (_K1 + 1) / (1 + _K1 * (1 - _B + _B * lengths / max(average, 1.0)))
        ranked = scores[candidates] * norm
        keep = min(RANKED_CHUNKS, candidates.size)
        top = np.argpartition(-ranked, keep - 1)[:keep]
        top = top[np.argsort(-ranked[top], kind="stable")]
        return list(zip(candidates[top].tolist(), ranked[top].tolist(), strict=True))
