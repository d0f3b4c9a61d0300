"""Character-level fill-in-the-middle split of one text chunk (pure, no tokenizer).

Bavarian et al. (2022) / Code Llama recipe: with probability ``fim_rate`` a chunk is cut at two
uniformly random character positions into prefix/middle/suffix, and ordered PSM or SPM with equal
probability; otherwise it stays a plain left-to-right example.  The three parts always reassemble
the chunk exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class FimParts:
    """One chunk cut for FIM training (``fim=False``: a plain left-to-right example)."""

    prefix: str
    middle: str
    suffix: str
    fim: bool
    spm: bool

    @property
    def text(self) -> str:
        """The original chunk."""
        return self.prefix + self.middle + self.suffix


def fim_split(
    text: str, rng: random.Random, *, fim_rate: float = 0.9, spm_rate: float = 0.5
) -> FimParts:
    """Cut ``text`` at two random character positions (or not, with probability 1 - fim_rate)."""
    if not 0.0 <= fim_rate <= 1.0:
        raise ValueError(f"fim_rate must be in [0, 1], got {fim_rate}")
    if not 0.0 <= spm_rate <= 1.0:
        raise ValueError(f"spm_rate must be in [0, 1], got {spm_rate}")
    if rng.random() >= fim_rate:
        return FimParts(prefix="", middle=text, suffix="", fim=False, spm=False)
    a, b = sorted((rng.randint(0, len(text)), rng.randint(0, len(text))))
    spm = rng.random() < spm_rate
    return FimParts(prefix=text[:a], middle=text[a:b], suffix=text[b:], fim=True, spm=spm)
