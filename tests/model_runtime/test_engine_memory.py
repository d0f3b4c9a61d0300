"""The engine keeps nothing per request: a long run of varied requests holds no more tensors.

The soak (``bench/soak.py``) measures the server's RSS over ≥ 10k messages; this is the cheap
check of the one component that holds tensors between requests (the KV cache is replaced or
cropped, never accumulated; heal-candidate ids are cached once per tokenizer and device).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from typing import Any

from model_runtime.engine import CompletionRequest, Engine

BODY = "".join(f"def f_{n}(a, b):\n    return a * {n} + b\n\n" for n in range(40))


def _live_tensors() -> int:
    import torch

    gc.collect()
    return sum(1 for o in gc.get_objects() if issubclass(type(o), torch.Tensor))


def _requests(count: int) -> list[CompletionRequest]:
    """Cursors all over a file, prefixes of every length (varying tensor shapes)."""
    out = []
    for n in range(count):
        cut = (n * 977) % len(BODY)
        prefix = BODY[:cut] + ("    ret" if n % 3 else "")
        out.append(CompletionRequest("m.py", prefix, BODY[cut:], max_new_tokens=6))
    return out


def test_varied_requests_hold_no_more_tensors(loaded_factory: Callable[..., Any]) -> None:
    engine = Engine(loaded_factory(), context_tokens=192, prompt_lookup=True)
    cancelled = threading.Event()
    cancelled.set()

    def serve(requests: list[CompletionRequest]) -> None:
        for n, request in enumerate(requests):
            if n % 4 == 0:
                engine.prefill(request)
            elif n % 7 == 0:
                engine.complete(request, cancelled)
            else:
                engine.complete(request)

    serve(_requests(8))  # warm: cancel hooks, heal-candidate ids, first cache
    before = _live_tensors()
    serve(_requests(40))
    assert _live_tensors() <= before
    cache = engine._cache
    assert cache.get_seq_length() == engine.cached_tokens <= 192 + 6
