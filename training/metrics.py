"""Completion quality metrics: exact match, edit similarity and identifier match.

As in CrossCodeEval: strings are compared after stripping surrounding whitespace; edit
similarity is ``1 - levenshtein / max(len)``; identifier match compares the sequences of
identifiers (exact match) and their multiset overlap (F1).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insert/delete/substitute, unit costs)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def edit_similarity(pred: str, target: str) -> float:
    """1 - normalised edit distance of the stripped strings (1.0 for two empty strings)."""
    p, t = pred.strip(), target.strip()
    if not p and not t:
        return 1.0
    return 1.0 - levenshtein(p, t) / max(len(p), len(t))


def exact_match(pred: str, target: str) -> bool:
    """Equal after stripping surrounding whitespace."""
    return pred.strip() == target.strip()


def identifiers(text: str) -> list[str]:
    """Identifier-like tokens in order."""
    return _IDENT.findall(text)


def identifier_f1(pred: str, target: str) -> float:
    """F1 of the identifier multisets (1.0 when neither has identifiers)."""
    p, t = Counter(identifiers(pred)), Counter(identifiers(target))
    if not p and not t:
        return 1.0
    overlap = sum((p & t).values())
    if overlap == 0:
        return 0.0
    prec, rec = overlap / sum(p.values()), overlap / sum(t.values())
    return 2 * prec * rec / (prec + rec)


@dataclass
class Scores:
    """Aggregated metrics over holes, in percent (0-100) except ``n``."""

    n: int
    exact_match: float
    edit_similarity: float
    identifier_em: float
    identifier_f1: float

    def as_dict(self) -> dict[str, float | int]:
        """JSON-friendly form."""
        return asdict(self)


def score(pairs: Iterable[tuple[str, str]]) -> Scores:
    """Aggregate (prediction, target) pairs."""
    em = es = iem = if1 = 0.0
    n = 0
    for pred, target in pairs:
        n += 1
        em += exact_match(pred, target)
        es += edit_similarity(pred, target)
        iem += identifiers(pred) == identifiers(target)
        if1 += identifier_f1(pred, target)
    if n == 0:
        return Scores(0, 0.0, 0.0, 0.0, 0.0)
    k = 100.0 / n
    return Scores(n, em * k, es * k, iem * k, if1 * k)
