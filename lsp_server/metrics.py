"""Rolling completion statistics for ``codellama.status``: latency percentiles and tokens/s."""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["CompletionStats", "PrefetchStats", "percentile"]


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
        self.last_prompt_tokens = 0
        """Prompt tokens of the last model completion."""
        self.last_reused_tokens = 0
        """Of those, tokens served from the KV cache (prefix reuse, prefetch)."""
        self.reused_tokens = 0
        """Prompt tokens served from the KV cache, summed over model completions."""
        self.prefetch = PrefetchStats()
        """Background prefills and speculative completions (``prefetch`` setting)."""

    def record(self, latency_s: float, tokens: int, decode_tokens_per_s: float) -> None:
        """Add one finished model completion."""
        with self._lock:
            self._samples.append(_Sample(latency_s, tokens, decode_tokens_per_s))

    def record_prompt(self, prompt_tokens: int, reused_tokens: int) -> None:
        """Prompt size and KV reuse of one finished model completion."""
        with self._lock:
            self.last_prompt_tokens = prompt_tokens
            self.last_reused_tokens = reused_tokens
            self.reused_tokens += reused_tokens

    def summary(self) -> dict[str, Any]:
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
            "lastPromptTokens": self.last_prompt_tokens,
            "lastReusedTokens": self.last_reused_tokens,
            "reusedTokens": self.reused_tokens,
            "prefetch": self.prefetch.summary(),
        }


@dataclass
class PrefetchStats:
    """Counters of the background work that makes answers ready before they are asked for.

    A *prefill hit* is a model completion, the first after a background prefill, that reused
    more cached tokens than were cached before that prefill (it used the prefetched work); a
    *miss* is one that did not. A *speculative hit* is a request answered from a completion
    computed ahead for the accepted suggestion; a *speculative miss* is a request at such a
    context whose speculation was not ready (still queued, running or cancelled).
    """

    prefills: int = 0
    prefills_cancelled: int = 0
    prefilled_tokens: int = 0
    hits: int = 0
    misses: int = 0
    speculations: int = 0
    speculations_cancelled: int = 0
    speculative_hits: int = 0
    speculative_misses: int = 0
    active: int = 0
    """Background jobs queued or running now."""

    def summary(self) -> dict[str, int]:
        """camelCase counters for ``codellama.status``."""
        return {
            "prefills": self.prefills,
            "prefillsCancelled": self.prefills_cancelled,
            "prefilledTokens": self.prefilled_tokens,
            "hits": self.hits,
            "misses": self.misses,
            "speculations": self.speculations,
            "speculationsCancelled": self.speculations_cancelled,
            "speculativeHits": self.speculative_hits,
            "speculativeMisses": self.speculative_misses,
            "active": self.active,
        }
