"""Shannon entropy of a value, the expected entropy of a random string, and the token test."""

from __future__ import annotations

import functools
import math
import re
from collections import Counter


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


_TOKENISH = re.compile(r"[A-Za-z0-9+/=_\-.~:]{12,}")


def high_entropy(value: str) -> bool:
    """A random-looking token: 12+ token characters, letters and digits, high entropy."""
    if not _TOKENISH.fullmatch(value):
        return False
    if not (re.search(r"[0-9]", value) and re.search(r"[A-Za-z]", value)):
        return len(value) >= 20 and entropy(value) >= 4.0
    limit = 3.0 if re.fullmatch(r"[0-9a-fA-F]+", value) else 3.3
    return entropy(value) >= limit


@functools.lru_cache(maxsize=8192)
def expected_entropy(length: int, alphabet: int) -> float:
    """Mean Shannon entropy (bits/char) of a uniformly random string over ``alphabet`` symbols."""
    if alphabet <= 1 or length <= 1:
        return 0.0
    p = 1.0 / alphabet
    pmf = (1.0 - p) ** length
    total = 0.0
    for x in range(1, length + 1):
        pmf *= (length - x + 1) / x * p / (1.0 - p)
        q = x / length
        total -= pmf * q * math.log2(q)
    return alphabet * total
