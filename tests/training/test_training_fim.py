"""Properties of the character-level FIM transform."""

from __future__ import annotations

import random
import string

import pytest

from training.fim_split import fim_split


def _chunks(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + " \n\t()[]{}:=._ü€"
    return ["".join(rng.choices(alphabet, k=rng.randint(0, 200))) for _ in range(n)]


def test_parts_reassemble_every_chunk() -> None:
    rng = random.Random(0)
    for chunk in _chunks(10_000):
        parts = fim_split(chunk, rng)
        assert parts.prefix + parts.middle + parts.suffix == chunk
        if not parts.fim:
            assert parts.prefix == parts.suffix == "" and not parts.spm


@pytest.mark.parametrize(("fim_rate", "spm_rate"), [(0.9, 0.5), (0.5, 0.2), (1.0, 1.0), (0.0, 0.5)])
def test_rates_within_tolerance_over_10k_chunks(fim_rate: float, spm_rate: float) -> None:
    rng = random.Random(42)
    results = [fim_split(c, rng, fim_rate=fim_rate, spm_rate=spm_rate) for c in _chunks(10_000)]
    fim = [p for p in results if p.fim]
    assert abs(len(fim) / len(results) - fim_rate) < 0.02
    if fim:
        assert abs(sum(p.spm for p in fim) / len(fim) - spm_rate) < 0.03


def test_split_points_are_uniform_characters() -> None:
    rng = random.Random(3)
    text = "x" * 100
    cuts = [len(fim_split(text, rng, fim_rate=1.0).prefix) for _ in range(5000)]
    # min of two uniforms on [0, 100] has mean 100/3
    assert abs(sum(cuts) / len(cuts) - 100 / 3) < 2
    assert min(cuts) == 0 and max(cuts) > 90


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_rate_validation(bad: float) -> None:
    with pytest.raises(ValueError, match="fim_rate"):
        fim_split("abc", random.Random(0), fim_rate=bad)
