"""Chat-style generation on a real (tiny) transformers model: stop strings and cancellation."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lsp_server.refactor.generate import GenerationCancelled, GenerationStats, generate_answer
from lsp_server.refactor.prompts import ModelPrompt, render_prompt


@pytest.fixture(scope="module")
def model(broken_model: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(broken_model), AutoTokenizer.from_pretrained(
        broken_model
    )


def prompt(max_new_tokens: int, stop: tuple[str, ...] = ()) -> ModelPrompt:
    return ModelPrompt([{"role": "user", "content": "hi"}], '"""', stop, max_new_tokens)


def test_renders_the_chat_template_with_the_prefill(model: tuple[Any, Any]) -> None:
    text = render_prompt(model[1], prompt(4))
    assert text == '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"""'


def test_runs_to_the_token_limit_unfinished(model: tuple[Any, Any]) -> None:
    stats: list[GenerationStats] = []
    answer = generate_answer(*model, prompt(5), stats=stats)
    assert answer.text == "(" * 5 and not answer.finished
    assert stats[0].new_tokens == 5


def test_stops_at_a_stop_string_and_cuts_before_it(model: tuple[Any, Any]) -> None:
    answer = generate_answer(*model, prompt(50, stop=("(((",)))
    assert answer.text == "" and answer.finished


def test_cancel_stops_within_a_step(model: tuple[Any, Any]) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    began = time.perf_counter()
    with pytest.raises(GenerationCancelled):
        generate_answer(*model, prompt(100_000), cancel=cancel)
    assert time.perf_counter() - began < 10
    timer.cancel()


def test_already_cancelled_does_not_generate(model: tuple[Any, Any]) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled):
        generate_answer(*model, prompt(5), cancel=cancel)
