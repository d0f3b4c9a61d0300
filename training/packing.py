"""Pack token sequences into context-length rows with no attention across documents.

Rows are filled best-fit-decreasing.  Each document's ``position_ids`` restart at 0; with
``attention_mask=None`` transformers (≥ 5) turns position resets into a block-diagonal causal
mask for eager/SDPA attention and into varlen kernels for flash-attention, so a token never
attends to another document.  The first token of every document gets label -100 so the last
token of the previous document is not trained to predict it.  Batches are padded only to their
longest row (rows of similar length are batched together), which keeps padding far below 2 %.

The forward pass must run with ``use_cache=False``: transformers only derives the block mask from
position ids when no KV cache object exists (it creates one whenever ``use_cache`` is on).
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

IGNORE_INDEX = -100


@dataclass
class PackedRow:
    """Several documents laid end to end (``doc_lengths`` sums to ``len(input_ids)``)."""

    input_ids: list[int] = field(default_factory=list)
    doc_lengths: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)

    def add(self, ids: Sequence[int]) -> None:
        """Append one document."""
        self.input_ids.extend(ids)
        self.doc_lengths.append(len(ids))


def pack_sequences(seqs: Sequence[Sequence[int]], context_len: int) -> list[PackedRow]:
    """Best-fit-decreasing bin packing; sequences longer than the context are truncated."""
    if context_len < 2:
        raise ValueError(f"context_len must be ≥ 2, got {context_len}")
    order = sorted(range(len(seqs)), key=lambda i: (-len(seqs[i]), i))
    rows: list[PackedRow] = []
    free: list[tuple[int, int]] = []  # (remaining capacity, row index), sorted
    for i in order:
        ids = list(seqs[i][:context_len])
        if not ids:
            continue
        pos = bisect.bisect_left(free, (len(ids), -1))
        if pos < len(free):
            remaining, row_idx = free.pop(pos)
        else:
            rows.append(PackedRow())
            remaining, row_idx = context_len, len(rows) - 1
        rows[row_idx].add(ids)
        remaining -= len(ids)
        if remaining > 0:
            bisect.insort(free, (remaining, row_idx))
    return rows


def row_labels_positions(row: PackedRow) -> tuple[list[int], list[int]]:
    """Labels (document starts masked) and per-document position ids for one row."""
    labels = list(row.input_ids)
    positions: list[int] = []
    start = 0
    for n in row.doc_lengths:
        labels[start] = IGNORE_INDEX
        positions.extend(range(n))
        start += n
    return labels, positions


def plan_batches(
    rows: Sequence[PackedRow], batch_size: int, *, seed: int, bucket: int = 16
) -> list[list[int]]:
    """Row indices per batch: shuffled, but rows of similar length share a batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    rng = random.Random(seed)
    idx = list(range(len(rows)))
    rng.shuffle(idx)
    batches: list[list[int]] = []
    span = batch_size * bucket
    for s in range(0, len(idx), span):
        group = sorted(idx[s : s + span], key=lambda i: len(rows[i]))
        batches.extend(group[j : j + batch_size] for j in range(0, len(group), batch_size))
    rng.shuffle(batches)
    return batches


def collate(rows: Sequence[PackedRow], pad_id: int) -> dict[str, Any]:
    """Tensors for one batch: ``input_ids``, ``labels``, ``position_ids`` (no attention mask).

    Padding is its own pseudo-document (positions restart, labels ignored), so it neither
    attends to nor is attended by real tokens.
    """
    import torch

    width = max(len(r) for r in rows)
    ids, labels, positions = [], [], []
    for r in rows:
        lab, pos = row_labels_positions(r)
        pad = width - len(r)
        ids.append(r.input_ids + [pad_id] * pad)
        labels.append(lab + [IGNORE_INDEX] * pad)
        positions.append(pos + list(range(pad)))
    return {
        "input_ids": torch.tensor(ids, dtype=torch.long),
        "labels": torch.tensor(labels, dtype=torch.long),
        "position_ids": torch.tensor(positions, dtype=torch.long),
    }


def padding_fraction(rows: Sequence[PackedRow], batches: Sequence[Sequence[int]]) -> float:
    """Share of pad tokens among all tokens fed to the model for these batches."""
    real = total = 0
    for b in batches:
        width = max(len(rows[i]) for i in b)
        real += sum(len(rows[i]) for i in b)
        total += width * len(b)
    return 0.0 if total == 0 else 1.0 - real / total
