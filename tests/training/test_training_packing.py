"""Packing: rows fit the context, padding stays tiny, documents never attend to each other."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from training.packing import (
    IGNORE_INDEX,
    collate,
    pack_sequences,
    padding_fraction,
    plan_batches,
    row_labels_positions,
)


def _seqs(n: int, ctx: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randint(5, 99) for _ in range(rng.randint(1, ctx))] for _ in range(n)]


def test_rows_hold_every_document_once_and_fit() -> None:
    seqs = _seqs(500, 256)
    rows = pack_sequences(seqs, 256)
    assert all(len(r) <= 256 for r in rows)
    packed = sorted(tuple(r.input_ids[s : s + n]) for r in rows for s, n in _spans(r.doc_lengths))
    assert packed == sorted(tuple(s) for s in seqs)


def _spans(lengths: list[int]) -> list[tuple[int, int]]:
    out, start = [], 0
    for n in lengths:
        out.append((start, n))
        start += n
    return out


def test_padding_below_two_percent() -> None:
    seqs = _seqs(2000, 512, seed=1)
    rows = pack_sequences(seqs, 512)
    batches = plan_batches(rows, 4, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(len(rows)))
    assert padding_fraction(rows, batches) < 0.02


def test_labels_and_positions_reset_per_document() -> None:
    rows = pack_sequences([[1, 2, 3], [4, 5]], 8)
    labels, pos = row_labels_positions(rows[0])
    assert pos == [0, 1, 2, 0, 1]
    assert labels == [IGNORE_INDEX, 2, 3, IGNORE_INDEX, 5]
    batch = collate([rows[0], *pack_sequences([[7]], 8)], pad_id=0)
    assert batch["input_ids"].tolist()[1] == [7, 0, 0, 0, 0]
    assert batch["labels"].tolist()[1] == [IGNORE_INDEX] * 5
    assert batch["position_ids"].tolist()[1] == [0, 0, 1, 2, 3]
    assert "attention_mask" not in batch


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_perturbing_one_document_does_not_change_another(tiny_model: Path, attn: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attn).eval()
    rng = random.Random(5)
    vocab = model.config.vocab_size
    doc_a = [rng.randrange(3, vocab) for _ in range(37)]
    doc_a2 = [rng.randrange(3, vocab) for _ in range(37)]
    doc_b = [rng.randrange(3, vocab) for _ in range(29)]

    def logits_of_b(first: list[int]) -> torch.Tensor:
        rows = pack_sequences([first, doc_b], 128)
        assert len(rows) == 1
        batch = collate(rows, pad_id=0)
        with torch.no_grad():
            out = model(
                input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
            )
        start = 0
        for n, ids in zip(rows[0].doc_lengths, _docs(rows[0]), strict=True):
            if ids == doc_b:
                return out.logits[0, start : start + n]
            start += n
        raise AssertionError("doc B not found")

    with torch.no_grad():
        alone = model(input_ids=torch.tensor([doc_b]), use_cache=False).logits[0]
    b1, b2 = logits_of_b(doc_a), logits_of_b(doc_a2)
    torch.testing.assert_close(b1, b2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b1, alone, atol=1e-5, rtol=1e-5)
    # sanity: without the position reset B *would* see A
    flat = torch.tensor([doc_a + doc_b])
    with torch.no_grad():
        leaked = model(input_ids=flat, use_cache=False).logits[0, len(doc_a) :]
    assert not torch.allclose(leaked, alone, atol=1e-4)


def _docs(row) -> list[list[int]]:  # type: ignore[no-untyped-def]
    return [row.input_ids[s : s + n] for s, n in _spans(row.doc_lengths)]
