"""Train/validation split: stable, by file, near-duplicates never straddle it."""

from __future__ import annotations

import random

from training.split import near_duplicate_clusters, split_records


def _rec(path: str, content: str) -> dict[str, object]:
    return {"file_path": path, "content": content, "source": "file"}


def _body(seed: int, n: int = 300) -> str:
    rng = random.Random(seed)
    words = [f"w{rng.randint(0, 5000)}" for _ in range(n)]
    return "\n".join(" ".join(words[i : i + 10]) for i in range(0, n, 10))


def _records() -> list[dict[str, object]]:
    recs = [_rec(f"src/mod{i}.py", _body(i)) for i in range(60)]
    # near-duplicates of a few files: a handful of words changed
    for i in range(0, 60, 6):
        text = str(recs[i]["content"]).split(" ")
        text[5] = "changed"
        text[40] = "edited"
        recs.append(_rec(f"copy/mod{i}_copy.py", " ".join(text)))
    return recs


def test_near_duplicates_cluster_together() -> None:
    recs = _records()
    clusters = near_duplicate_clusters({str(r["file_path"]): str(r["content"]) for r in recs})
    together = {frozenset(c) for c in clusters if len(c) > 1}
    for i in range(0, 60, 6):
        assert frozenset({f"src/mod{i}.py", f"copy/mod{i}_copy.py"}) in together


def test_no_leakage_and_stable_across_runs_and_order() -> None:
    recs = _records()
    a = split_records(recs, val_fraction=0.2)
    shuffled = list(recs)
    random.Random(9).shuffle(shuffled)
    b = split_records(shuffled, val_fraction=0.2)
    assert a.train_paths == b.train_paths and a.validation_paths == b.validation_paths
    assert not a.train_paths & a.validation_paths
    assert a.train_paths | a.validation_paths == {str(r["file_path"]) for r in recs}
    for cluster in a.clusters:
        sides = {p in a.validation_paths for p in cluster}
        assert len(sides) == 1, f"cluster {cluster} straddles the split"
    assert 0.05 < len(a.validation) / len(recs) < 0.4


def test_adding_a_file_keeps_other_assignments() -> None:
    recs = _records()
    before = split_records(recs, val_fraction=0.2)
    after = split_records([*recs, _rec("src/new.py", _body(999))], val_fraction=0.2)
    assert before.validation_paths <= after.validation_paths | {"src/new.py"}
    assert before.train_paths <= after.train_paths


def test_small_workspace_still_gets_validation_and_training() -> None:
    recs = [_rec(f"a{i}.py", _body(100 + i)) for i in range(3)]
    s = split_records(recs, val_fraction=0.1)
    assert len(s.validation) == 1 and len(s.train) == 2


def test_commit_records_are_not_split() -> None:
    recs = [*_records(), {"file_path": "x", "content": "diff", "source": "commit"}]
    s = split_records(recs)
    assert "x" not in s.train_paths | s.validation_paths
