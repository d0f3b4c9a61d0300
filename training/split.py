"""Train/validation split by file, stable across runs, with near-duplicates kept on one side.

Files are grouped into near-duplicate clusters (MinHash over 5-gram word shingles, LSH candidates
confirmed at estimated Jaccard ≥ ``threshold``); a cluster goes to validation when the hash of
its smallest path falls below ``val_fraction``.  Adding or editing one file therefore moves at most
the clusters it joins, and no near-duplicate pair ever straddles the split.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass
class Split:
    """Records on each side plus the clusters that decided it."""

    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    clusters: list[list[str]]

    @property
    def train_paths(self) -> set[str]:
        """Workspace-relative paths of the training files."""
        return {str(r["file_path"]) for r in self.train}

    @property
    def validation_paths(self) -> set[str]:
        """Workspace-relative paths of the validation files."""
        return {str(r["file_path"]) for r in self.validation}


def path_fraction(path: str) -> float:
    """A stable pseudo-random number in [0, 1) derived from a path."""
    digest = hashlib.sha256(path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def shingles(text: str, n: int = 5) -> set[bytes]:
    """Word n-gram shingles (fewer words than n: the whole token sequence is one shingle)."""
    words = _WORD.findall(text)
    if not words:
        return set()
    if len(words) < n:
        return {" ".join(words).encode("utf-8")}
    return {" ".join(words[i : i + n]).encode("utf-8") for i in range(len(words) - n + 1)}


def near_duplicate_clusters(
    docs: dict[str, str], *, threshold: float = 0.7, num_perm: int = 128
) -> list[list[str]]:
    """Group paths whose contents are near-duplicates (transitively), each cluster sorted."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    hashes: dict[str, Any] = {}
    for path in sorted(docs):
        sh = shingles(docs[path])
        if not sh:
            continue
        m = MinHash(num_perm=num_perm, seed=1)
        m.update_batch(list(sh))
        hashes[path] = m
        lsh.insert(path, m)
    parent = {p: p for p in docs}

    def find(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for path, m in hashes.items():
        for other in lsh.query(m):
            if other != path and m.jaccard(hashes[other]) >= threshold:
                a, b = find(path), find(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[str, list[str]] = {}
    for p in docs:
        groups.setdefault(find(p), []).append(p)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def split_records(
    records: list[dict[str, Any]],
    *,
    val_fraction: float = 0.1,
    threshold: float = 0.7,
    min_validation_files: int = 1,
) -> Split:
    """Split file records into train and validation (commit records are not used).

    When the hash rule leaves fewer than ``min_validation_files`` validation files (small
    workspaces), clusters with the smallest path hashes are moved over, still whole, as long as
    training keeps at least one cluster.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    files = [r for r in records if r.get("source", "file") == "file"]
    by_path = {str(r["file_path"]): r for r in files}
    clusters = near_duplicate_clusters(
        {p: str(r.get("content", "")) for p, r in by_path.items()}, threshold=threshold
    )
    ranked = sorted(clusters, key=lambda c: path_fraction(c[0]))
    val_clusters = [c for c in ranked if path_fraction(c[0]) < val_fraction]
    if val_fraction > 0:
        for c in ranked:
            n_val = sum(len(v) for v in val_clusters)
            if n_val >= min_validation_files or len(val_clusters) >= len(ranked) - 1:
                break
            if c not in val_clusters:
                val_clusters.append(c)
    val_paths = {p for c in val_clusters for p in c}
    train = [by_path[p] for p in sorted(by_path) if p not in val_paths]
    validation = [by_path[p] for p in sorted(by_path) if p in val_paths]
    return Split(train=train, validation=validation, clusters=clusters)
