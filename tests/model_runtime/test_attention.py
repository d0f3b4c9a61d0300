"""The served model's decode attention (model_runtime.attention): same attention, faster kernel."""

from __future__ import annotations

from typing import Any

import pytest

from model_runtime.attention import ATTENTION_NAME, use_fast_decode_attention
from model_runtime.tiny import tiny_llama


def _decode_logits(model: Any, ids: list[int], steps: int) -> tuple[list[Any], list[int]]:
    """Prefill ``ids`` in two chunks (the second one attends to cached keys, as the engine's
    chunked prefill and KV reuse do) then decode ``steps`` greedy tokens one at a time: the
    logits of every prompt position of the second chunk and of every step."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    logits: list[Any] = []
    tokens: list[int] = []
    half = len(ids) // 2
    with torch.inference_mode():
        model(input_ids=torch.tensor([ids[:half]]), past_key_values=cache, use_cache=True)
        out = model(input_ids=torch.tensor([ids[half:]]), past_key_values=cache, use_cache=True)
        logits.extend(out.logits[0, :-1].float().clone())
        for _ in range(steps):
            last = out.logits[0, -1]
            logits.append(last.float().clone())
            tokens.append(int(last.argmax()))
            out = model(input_ids=torch.tensor([[tokens[-1]]]), past_key_values=cache)
    return logits, tokens


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fast_decode_attention_matches_sdpa(codellama_tokenizer: Any, dtype: str) -> None:
    import torch

    model = tiny_llama(codellama_tokenizer, seed=3, hidden_size=64, num_layers=2).to(
        getattr(torch, dtype)
    )
    assert model.config.num_attention_heads > model.config.num_key_value_heads  # GQA
    ids = [int(t) for t in torch.randint(5, len(codellama_tokenizer), (90,))]
    want_logits, want = _decode_logits(model, ids, 12)

    assert use_fast_decode_attention(model, "cpu")
    assert model.config._attn_implementation == ATTENTION_NAME
    got_logits, got = _decode_logits(model, ids, 12)

    tolerance = 1e-5 if dtype == "float32" else 3e-2
    for position, (a, b) in enumerate(zip(got_logits, want_logits, strict=True)):
        assert torch.allclose(a, b, atol=tolerance, rtol=tolerance), f"position {position}"
    if dtype == "float32":
        assert got == want


def test_fast_decode_attention_is_only_for_cpu_sdpa(codellama_tokenizer: Any) -> None:
    model = tiny_llama(codellama_tokenizer, seed=1)
    assert not use_fast_decode_attention(model, "cuda")
    model.set_attn_implementation("eager")
    assert not use_fast_decode_attention(model, "cpu")
    assert model.config._attn_implementation == "eager"


def test_loaded_models_decode_with_it(tiny_model_dir: Any) -> None:
    from model_runtime.loader import load_model

    loaded = load_model(str(tiny_model_dir), device="cpu")
    assert loaded.model.config._attn_implementation == ATTENTION_NAME
