"""Weight-only int8 / int4 serving (model_runtime.quant) on tiny random models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import cancel_while_generating

from model_runtime.engine import CompletionRequest, Engine
from model_runtime.loader import ModelLoadError, load_model, write_adapter_meta
from model_runtime.quant import (
    AUTO_CPU,
    MATMUL_ROWS,
    Int4Linear,
    Int8Linear,
    QuantizeError,
    choose_quantize,
    int4_fits,
    quantize_linears,
    restore_linears,
)
from model_runtime.tiny import build_tiny_llama

PREFIX = "".join(f"def function_{n}(a, b):\n    return a + b * {n}\n\n" for n in range(12))
REQUEST = CompletionRequest(
    path="m.py", prefix=PREFIX + "def f(", suffix="\n", multiline=True, max_new_tokens=12
)


def _relative_error(got: Any, want: Any) -> float:
    return float((got.float() - want.float()).norm() / want.float().norm())


@pytest.mark.parametrize("cls, tolerance", [(Int8Linear, 0.02), (Int4Linear, 0.12)])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("rows", [1, 3, 40])  # decode kernel, and the dense path of prefill
def test_quantized_linear_matches_float(cls: Any, tolerance: float, dtype: str, rows: int) -> None:
    import torch

    torch.manual_seed(0)
    linear = torch.nn.Linear(128, 96, bias=True).to(getattr(torch, dtype)).requires_grad_(False)
    x = torch.randn(2, rows, 128, dtype=linear.weight.dtype)
    want = torch.nn.functional.linear(x.float(), linear.weight.float(), linear.bias.float())
    quantized = cls(linear)
    got = quantized(x)
    assert got.shape == want.shape and got.dtype == linear.weight.dtype
    assert _relative_error(got, want) < tolerance
    if rows > MATMUL_ROWS:  # a prompt chunk runs the original float layer
        assert torch.equal(got, linear(x))
        return
    # A decode step computes with exactly the dequantised weight (up to matmul rounding).
    dense = torch.nn.functional.linear(
        x.float(), quantized.dequantized().float(), linear.bias.float()
    )
    assert _relative_error(got, dense) < 0.01


def test_int4_rejects_shapes_the_kernel_does_not_take() -> None:
    import torch

    with pytest.raises(QuantizeError, match="int4"):
        Int4Linear(torch.nn.Linear(48, 32))  # 48 input channels: not a multiple of 32


def test_choose_quantize() -> None:
    assert choose_quantize("auto", "cuda", "bundled:qwen2.5-coder-0.5b").mode == "none"
    assert choose_quantize("auto", "cpu", "some/model").mode == "none"
    spec = next(iter(AUTO_CPU))
    assert choose_quantize("AUTO", "cpu", spec).mode == AUTO_CPU[spec][0]
    assert choose_quantize("auto", "cpu", "bundled:qwen2.5-coder-0.5b").mode == "int8"
    # measured for bf16 serving: a CPU without native bf16 serves fp32, unquantised
    fp32 = choose_quantize("auto", "cpu", "bundled:qwen2.5-coder-0.5b", "float32")
    assert fp32.mode == "none" and "bf16" in fp32.reason
    assert choose_quantize("int8", "cpu").reason == "int8 (set explicitly)"
    assert choose_quantize(None, "cpu").mode == "none"
    with pytest.raises(QuantizeError, match="CPU only"):
        choose_quantize("int4", "cuda")
    with pytest.raises(QuantizeError, match="none, int8, int4 or auto"):
        choose_quantize("int3", "cpu")


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantize_linears_keeps_tied_embedding_and_restores(
    codellama_tokenizer: Any, mode: str
) -> None:
    import torch

    from model_runtime.tiny import tiny_llama

    model = tiny_llama(codellama_tokenizer, hidden_size=64, tie_word_embeddings=True)
    embedding = model.get_input_embeddings().weight
    assert model.lm_head.weight is embedding
    ids = torch.tensor([[1, 5, 9, 30, 41]])
    with torch.inference_mode():
        before = model(input_ids=ids).logits
    linears = [n for n, m in model.named_modules() if type(m) is torch.nn.Linear]
    swaps = quantize_linears(model, mode)
    assert len(swaps) == len(linears) and "lm_head" in linears
    for swap in swaps:  # int4 where the kernel takes the shape (not a 484-row head), else int8
        kind = Int4Linear if mode == "int4" and int4_fits(swap.original) else Int8Linear
        assert type(getattr(swap.parent, swap.attr)) is kind
    assert any(type(getattr(s.parent, s.attr)) is Int4Linear for s in swaps) == (mode == "int4")
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    assert model.get_input_embeddings().weight is embedding  # the lookup stays float
    with torch.inference_mode():
        quantized = model(input_ids=ids).logits
    assert _relative_error(quantized, before) < (0.05 if mode == "int8" else 0.3)
    restore_linears(swaps)
    assert model.lm_head.weight is embedding
    with torch.inference_mode():
        assert torch.equal(model(input_ids=ids).logits, before)


def test_bad_quantize_value_is_a_load_error(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="unknown quantize"):
        load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16", quantize="fp8")


def test_int8_engine_is_deterministic_and_reuses_the_cache(tiny_model_dir: Path) -> None:
    loaded = load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16", quantize="int8")
    assert loaded.quantize == "int8" and loaded.quantize_reason == "int8 (set explicitly)"
    assert any(isinstance(m, Int8Linear) for m in loaded.model.modules())
    engine = Engine(loaded)
    first = engine.complete(REQUEST)
    again = engine.complete(REQUEST)  # served from the cropped KV cache
    assert first.tokens > 0 and again.reused_tokens == again.prompt_tokens - 1
    assert again.raw_text == first.raw_text
    engine.reset_cache()
    assert engine.complete(REQUEST).raw_text == first.raw_text
    fresh = Engine(load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16", quantize="int8"))
    assert fresh.complete(REQUEST).raw_text == first.raw_text


def test_int8_engine_cancels_from_another_thread(tmp_path: Path, codellama_tokenizer: Any) -> None:
    directory = build_tiny_llama(
        tmp_path / "endless", tokenizer=codellama_tokenizer, hidden_size=48, endless=["▁x", "▁y"]
    )
    engine = Engine(load_model(str(directory), device="cpu", dtype="bfloat16", quantize="int8"))
    request = CompletionRequest(
        path="m.py", prefix=PREFIX, suffix="\n", multiline=True, max_new_tokens=100_000
    )
    result, seconds = cancel_while_generating(engine, request)
    assert result.cancelled and result.text == ""
    assert seconds < 0.2
    assert not engine.complete(CompletionRequest(path="m.py", prefix=PREFIX, suffix="",
                                                 max_new_tokens=2)).cancelled  # fmt: skip


def _save_adapter(base_dir: Path, out: Path) -> None:
    """A LoRA adapter on all linear layers, as training writes it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    config = LoraConfig(
        r=4, lora_alpha=8, init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )  # fmt: skip
    get_peft_model(model, config).save_pretrained(str(out))
    write_adapter_meta(out, base_model=str(base_dir), template="codellama")


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_adapter_swap_on_quantized_base_restores_base_logits(
    tmp_path: Path, codellama_tokenizer: Any, mode: str
) -> None:
    import torch

    base_dir = build_tiny_llama(tmp_path / "base", tokenizer=codellama_tokenizer, hidden_size=64)
    adapter = tmp_path / "adapter"
    _save_adapter(base_dir, adapter)
    probe = torch.tensor([[1, 3, 40, 50, 60]])
    engine = Engine(load_model(str(base_dir), device="cpu", dtype="bfloat16", quantize=mode))

    def logits() -> Any:
        with torch.inference_mode():
            return engine.loaded.model(input_ids=probe).logits[0]

    base_logits = logits()
    base_text = engine.complete(REQUEST).raw_text

    # Reference: the adapter merged into a float model, then quantised the same way.
    reference = load_model(
        str(base_dir), device="cpu", dtype="bfloat16", adapter=str(adapter), quantize=mode
    )
    with torch.inference_mode():
        want = reference.model(input_ids=probe).logits[0]
    float_tuned = load_model(str(base_dir), device="cpu", dtype="bfloat16", adapter=str(adapter))
    with torch.inference_mode():
        float_logits = float_tuned.model(input_ids=probe).logits[0]

    engine.set_adapter(str(adapter))
    assert engine.loaded.adapter == str(adapter) and engine.loaded.quantize == mode
    kind = Int4Linear if mode == "int4" else Int8Linear
    served = [m for m in engine.loaded.model.modules() if isinstance(m, kind)]
    assert served, "the merged adapter is served by quantised layers"
    tuned = logits()
    assert _relative_error(tuned, want) < 0.02  # as if loaded with the adapter
    assert not torch.allclose(tuned, base_logits)  # the adapter is active
    assert _relative_error(tuned, float_logits) < (0.05 if mode == "int8" else 0.3)
    assert engine.complete(REQUEST).tokens > 0

    engine.set_adapter(None)
    assert engine.loaded.adapter is None
    assert torch.equal(logits(), base_logits)  # the base is restored exactly
    assert engine.complete(REQUEST).raw_text == base_text
