"""The generation engine on a tiny random Llama: reuse, cancellation, prompt lookup."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import pytest
from runtime_helpers import cancel_while_generating

from model_runtime import engine as engine_module
from model_runtime.engine import CompletionRequest, Engine

PREFIX = "".join(f"def function_{n}(a, b):\n    return a + b * {n}\n\n" for n in range(30))


def _request(prefix: str = PREFIX, suffix: str = "\n", **kwargs: Any) -> CompletionRequest:
    kwargs.setdefault("multiline", True)
    kwargs.setdefault("max_new_tokens", 16)
    return CompletionRequest(path="m.py", prefix=prefix, suffix=suffix, **kwargs)


def _count_forwards(
    model: Any, after: int | None = None, event: threading.Event | None = None
) -> list[int]:
    """Count forward passes; optionally set ``event`` once ``after`` passes have run."""
    calls = [0]

    def hook(module: Any, args: Any, output: Any) -> None:
        calls[0] += 1
        if event is not None and after is not None and calls[0] >= after:
            event.set()

    model.register_forward_hook(hook)
    return calls


def test_complete_returns_text_and_statistics(loaded_factory: Callable[..., Any]) -> None:
    engine = Engine(loaded_factory())
    result = engine.complete(_request())
    assert not result.cancelled
    assert 0 < result.tokens - result.heal_tokens <= 16  # healing re-creation is on top
    assert result.heal_tokens <= len(result.healed)
    assert result.stop_reason in {"eos", "max_tokens", "stop_rule"}
    assert result.prompt_tokens > 100 and result.reused_tokens == 0
    assert 0 < result.first_token_s <= result.latency_s
    assert engine.last_result is result
    assert engine.cached_tokens >= result.prompt_tokens


def test_kv_prefix_reuse_is_exact(loaded_factory: Callable[..., Any]) -> None:
    reuse = Engine(loaded_factory(), kv_reuse=True)
    fresh = Engine(loaded_factory(), kv_reuse=False)
    first = reuse.complete(_request())
    # The user typed on: the new prompt shares everything up to the cursor.
    typed = _request(PREFIX + "def fun")
    second = reuse.complete(typed)
    assert second.reused_tokens > first.prompt_tokens * 0.8
    baseline = fresh.complete(typed)
    assert baseline.reused_tokens == 0
    assert second.raw_text == baseline.raw_text and second.tokens == baseline.tokens
    # An edit far up in the file: the cache is cropped to the common prefix.
    edited = _request(PREFIX.replace("function_3(", "function_three("))
    third = reuse.complete(edited)
    assert 0 < third.reused_tokens < second.reused_tokens
    assert third.raw_text == fresh.complete(edited).raw_text
    # The identical request again: everything but the last prompt token is reused.
    again = reuse.complete(edited)
    assert again.reused_tokens == again.prompt_tokens - 1
    assert again.raw_text == third.raw_text


def test_prompt_lookup_is_exactly_greedy(loaded_factory: Callable[..., Any]) -> None:
    plain = Engine(loaded_factory(seed=3))
    lookup = Engine(loaded_factory(seed=3), prompt_lookup=True, prompt_lookup_num_tokens=6)
    for prefix in (PREFIX, PREFIX + "def function_1(a, b):\n    return a"):
        request = _request(prefix, max_new_tokens=24)
        expected = plain.complete(request)
        got = lookup.complete(request)
        assert got.raw_text == expected.raw_text
        assert got.tokens == expected.tokens
        assert got.forward_passes <= expected.forward_passes


def test_cancel_before_start_runs_no_forward(loaded_factory: Callable[..., Any]) -> None:
    loaded = loaded_factory()
    calls = _count_forwards(loaded.model)
    cancel = threading.Event()
    cancel.set()
    result = Engine(loaded).complete(_request(), cancel)
    assert result.cancelled and result.text == "" and result.stop_reason == "cancelled"
    assert calls[0] == 0


@pytest.mark.parametrize("after", [1, 2, 6])
def test_cancel_stops_within_one_forward_pass(
    loaded_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, after: int
) -> None:
    monkeypatch.setattr(engine_module, "truncate_completion", lambda text, *a, **k: (text, False))
    loaded = loaded_factory()
    loaded = dataclasses.replace(
        loaded, template=dataclasses.replace(loaded.template, stop_ids=frozenset())
    )
    cancel = threading.Event()
    calls = _count_forwards(loaded.model, after=after, event=cancel)
    engine = Engine(loaded, prefill_chunk=64)  # several prefill chunks: cancellable in prefill
    result = engine.complete(_request(max_new_tokens=500), cancel)
    assert result.cancelled and result.text == ""
    assert calls[0] == after  # no forward pass after the event was set
    # The work done is kept: the next request reuses what was prefilled.
    follow = engine.complete(_request(max_new_tokens=2))
    assert not follow.cancelled
    assert follow.reused_tokens == min(after * 64, follow.prompt_tokens - 1)


def test_cancel_from_another_thread_returns_quickly(
    loaded_factory: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "truncate_completion", lambda text, *a, **k: (text, False))
    loaded = loaded_factory()
    loaded = dataclasses.replace(
        loaded, template=dataclasses.replace(loaded.template, stop_ids=frozenset())
    )
    result, seconds = cancel_while_generating(Engine(loaded), _request(max_new_tokens=100_000))
    assert result.cancelled
    assert seconds < 0.2


def test_empty_document_with_left_to_right_template(
    loaded_factory: Callable[..., Any], plain_tokenizer: Any
) -> None:
    from model_runtime.fim import detect_template

    loaded = loaded_factory()
    loaded = dataclasses.replace(
        loaded, tokenizer=plain_tokenizer, template=detect_template(plain_tokenizer)
    )
    result = Engine(loaded).complete(CompletionRequest(path="", prefix="", suffix=""))
    assert result.stop_reason == "empty" and result.text == "" and not result.cancelled


def test_engine_rejects_bad_settings(loaded_factory: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="context_tokens"):
        Engine(loaded_factory(), context_tokens=2)


def test_cancel_inside_a_forward_pass_keeps_the_cache_consistent(
    loaded_factory: Callable[..., Any],
) -> None:
    loaded = loaded_factory()
    cancel = threading.Event()
    first_layer_calls = [0]

    def set_in_first_layer(module: Any, args: Any, output: Any) -> None:
        first_layer_calls[0] += 1
        if first_layer_calls[0] == 3:  # during the 3rd prefill chunk, between layer 0 and 1
            cancel.set()

    loaded.model.model.layers[0].register_forward_hook(set_in_first_layer)
    engine = Engine(loaded, prefill_chunk=64)
    result = engine.complete(_request(), cancel)
    assert result.cancelled
    assert engine.cached_tokens == 128  # two complete chunks; the third one was trimmed away
    follow = engine.complete(_request())
    assert follow.reused_tokens == 128
    assert follow.raw_text == Engine(loaded_factory(), kv_reuse=False).complete(_request()).raw_text


def test_long_document_keeps_its_prompt_start_while_typing(
    loaded_factory: Callable[..., Any],
) -> None:
    engine = Engine(loaded_factory(), context_tokens=256)
    long_prefix = PREFIX * 4
    first = engine.complete(_request(long_prefix, max_new_tokens=2))
    reused = []
    for typed in ("d", "de", "def", "def f", "def fo", "def foo"):
        result = engine.complete(_request(long_prefix + typed, max_new_tokens=2))
        reused.append(result.reused_tokens)
        assert result.prompt_tokens <= 256 * 1.1
    assert min(reused) >= first.prompt_tokens - 8
    # Typing far beyond the slack re-cuts the window (and stays within the budget).
    far = engine.complete(_request(long_prefix + "x = 1\n" * 60, max_new_tokens=2))
    assert far.prompt_tokens <= 256


@pytest.mark.parametrize("heal", [True, False])
def test_trailing_whitespace_is_regenerated_not_prompted(
    loaded_factory: Callable[..., Any], heal: bool
) -> None:
    engine = Engine(loaded_factory(), token_healing=heal, kv_reuse=False)
    prefix = "def f(a):\n    "
    result = engine.complete(_request(prefix, max_new_tokens=8))
    assert len(engine.prompt_for(_request(prefix)).input_ids) == result.prompt_tokens
    if heal:
        assert result.healed == "\n    "
        assert result.raw_text.startswith("\n    ") or result.stop_reason == "max_tokens"
        # The prompt ends before the whitespace: the same ids as the prefix without it.
        stripped = engine.complete(_request("def f(a):", max_new_tokens=1))
        assert result.prompt_tokens == stripped.prompt_tokens
    else:
        assert result.healed == ""


def test_adapters_recorded_as_spm_get_suffix_prefix_middle_prompts(
    loaded_factory: Callable[..., Any],
) -> None:
    loaded = loaded_factory()
    template = loaded.template
    psm = Engine(loaded, kv_reuse=False).prompt_for(_request("x = ", suffix="\ny = 2\n"))
    spm = Engine(dataclasses.replace(loaded, fim_order="spm"), kv_reuse=False).prompt_for(
        _request("x = ", suffix="\ny = 2\n")
    )
    assert psm.input_ids != spm.input_ids and sorted(psm.input_ids) == sorted(spm.input_ids)
    # SPM: the prefix ends the prompt, right before the generated middle.
    ids = spm.input_ids
    assert ids.index(template.suffix_id) < ids.index(template.middle_id) < len(ids) - 1
    assert psm.input_ids[-1] == template.middle_id
