"""Helpers for the model runtime's tests (tests/model_runtime): cancelling a running completion.

Test modules import from here, never from a ``conftest.py``. Importable as ``runtime_helpers``
because pytest puts this folder (holding the root conftest.py) on ``sys.path``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from model_runtime.engine import CompletionRequest, CompletionResult


def cancel_while_generating(
    engine: Any, request: CompletionRequest, *, after_s: float = 0.5
) -> tuple[CompletionResult, float]:
    """Run ``engine.complete(request, cancel)`` on another thread and set ``cancel`` after
    ``after_s`` seconds; return its result and the seconds from the cancel to its return.

    Fails when the completion ended before the cancel (make ``request`` longer) or had not
    ended 5 s after it.
    """
    cancel = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        box["result"] = engine.complete(request, cancel)
        box["done"] = time.perf_counter()

    worker = threading.Thread(target=work)
    worker.start()
    time.sleep(after_s)
    assert worker.is_alive()
    set_at = time.perf_counter()
    cancel.set()
    worker.join(5)
    assert not worker.is_alive()
    return box["result"], box["done"] - set_at
