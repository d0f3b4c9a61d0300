"""Evaluation metrics and hole extraction."""

from __future__ import annotations

import pytest

from training.holes import make_holes
from training.metrics import edit_similarity, exact_match, identifier_f1, levenshtein, score


@pytest.mark.parametrize(
    ("a", "b", "d"), [("", "", 0), ("abc", "", 3), ("kitten", "sitting", 3), ("flaw", "lawn", 2)]
)
def test_levenshtein(a: str, b: str, d: int) -> None:
    assert levenshtein(a, b) == d == levenshtein(b, a)


def test_scores() -> None:
    assert exact_match(" x = 1 ", "x = 1")
    assert edit_similarity("abcd", "abce") == pytest.approx(0.75)
    assert identifier_f1("foo(bar)", "foo(baz)") == pytest.approx(0.5)
    s = score([("a", "a"), ("b", "c")])
    assert s.n == 2 and s.exact_match == 50.0


def test_holes_reassemble_files_and_mix_kinds(sample_records: list[dict[str, object]]) -> None:
    recs = sample_records
    holes = make_holes(recs, max_holes=40, seed=1)
    assert len(holes) == 40
    texts = {r["file_path"]: r["content"] for r in recs}
    for h in holes:
        assert h.prefix + h.target + h.suffix == texts[h.path]
        assert h.target.strip()
        if h.kind == "line":
            assert "\n" not in h.target and (h.suffix == "" or h.suffix.startswith("\n"))
        else:
            assert h.target.count("\n") >= 2 and h.prefix.endswith("\n")
    kinds = [h.kind for h in holes]
    assert 4 <= kinds.count("block") <= 12
    assert make_holes(recs, max_holes=40, seed=1) == holes
