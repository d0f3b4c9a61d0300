"""Rolling completion statistics for ``codellama.status``: latency percentiles and tokens/s."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

__all__ = ["CompletionStats", "percentile"]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0–100) of ``values``; ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class _Sample:
    latency_s: float
    tokens: int
    decode_tokens_per_s: float


class CompletionStats:
    """Thread-safe window over the last ``size`` model completions (cache hits excluded)."""

    def __init__(self, size: int = 100) -> None:
        self._samples: deque[_Sample] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.requests = 0
        """Completion requests received (including cache hits and empty answers)."""
        self.cache_hits = 0
        """Requests answered by the typed-through cache."""
        self.cancelled = 0
        """Requests superseded or cancelled before they finished."""

    def record(self, latency_s: float, tokens: int, decode_tokens_per_s: float) -> None:
        """Add one finished model completion."""
        with self._lock:
            self._samples.append(_Sample(latency_s, tokens, decode_tokens_per_s))

    def summary(self) -> dict[str, float | int | None]:
        """Latency p50/p95 in milliseconds, mean decode tokens/s, and counters."""
        with self._lock:
            samples = list(self._samples)
        latencies = [s.latency_s * 1000 for s in samples]
        speeds = [s.decode_tokens_per_s for s in samples if s.decode_tokens_per_s > 0]
        p50 = percentile(latencies, 50)
        p95 = percentile(latencies, 95)
        return {
            "completions": len(samples),
            "latencyP50Ms": round(p50, 1) if p50 is not None else None,
            "latencyP95Ms": round(p95, 1) if p95 is not None else None,
            "tokensPerSecond": round(sum(speeds) / len(speeds), 1) if speeds else None,
            "requests": self.requests,
            "cacheHits": self.cache_hits,
            "cancelled": self.cancelled,
        }
