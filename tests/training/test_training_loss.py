"""The chunked LM-head loss equals transformers' full-logits loss, and never builds full logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training.config import TrainConfig
from training.train import TrainStatus, prepare_model, train


def _packed_batch(model_dir: Path, records: list[dict[str, Any]], rows: int = 3) -> tuple[Any, ...]:
    from training.examples import build_examples
    from training.packing import collate, pack_sequences

    cfg = TrainConfig(output="unused", base_model=str(model_dir), context_len=128, device="cpu")
    prepared = prepare_model(cfg, "cpu")
    examples, _ = build_examples(
        records, prepared.tokenizer, prepared.template, context_len=128, seed=0
    )
    packed = pack_sequences([e.input_ids for e in examples], 128)[:rows]
    batch = collate(packed, int(prepared.tokenizer.pad_token_id))
    n_items = sum(len(r) - len(r.doc_lengths) for r in packed)
    return prepared.model, batch, n_items


def _loss_and_grads(
    model: Any, batch: dict[str, Any], n: int, chunk: int | None
) -> tuple[Any, ...]:
    from training.loss import causal_lm_loss

    model.zero_grad(set_to_none=True)
    loss = causal_lm_loss(model, batch, num_items=n, chunk_tokens=chunk)
    loss.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}
    return float(loss.detach()), grads


@pytest.mark.parametrize("chunk", [None, 1, 7, 100_000])
def test_chunked_loss_and_grads_equal_full_logits_through_peft(
    tiny_model: Path, sample_records: list[dict[str, Any]], chunk: int | None
) -> None:
    """PEFT LoRA + trainable FIM-token rows on a tied head (the SmolLM2-like path)."""
    import torch

    model, batch, n = _packed_batch(tiny_model, sample_records)
    model.eval()  # no dropout: both passes see the same function
    full, g_full = _loss_and_grads(model, batch, n, 0)
    chunked, g_chunked = _loss_and_grads(model, batch, n, chunk)
    assert chunked == pytest.approx(full, abs=1e-5, rel=1e-6)
    assert g_full.keys() == g_chunked.keys() and g_full
    for name, g in g_full.items():
        # summation order differs (1-position chunks add 300 terms one by one): fp32 rounding
        assert torch.allclose(g, g_chunked[name], rtol=1e-3, atol=1e-4), name


def test_chunked_loss_matches_hf_on_qwen2_architecture() -> None:
    """A tiny random Qwen2 (the default CPU model's architecture: qkv bias, tied head)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from training.loss import causal_lm_loss, supports_chunked_loss

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=997,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(config)
    assert supports_chunked_loss(model)
    ids = torch.randint(0, 997, (2, 40))
    labels = ids.clone()
    labels[0, :5] = -100
    labels[1, 30:] = -100
    batch = {"input_ids": ids, "labels": labels, "position_ids": torch.arange(40).repeat(2, 1)}
    n = int((labels[:, 1:] != -100).sum())
    with torch.no_grad():
        reference = model(**batch, use_cache=False).loss  # HF mean over label positions
        chunked = causal_lm_loss(model, batch, num_items=n, chunk_tokens=9)
    assert float(chunked) == pytest.approx(float(reference), abs=1e-5)


def test_full_logits_are_never_built(
    tiny_model: Path, sample_records: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every lm_head call sees at most one chunk of positions (or the one kept position)."""
    from training.loss import base_causal_lm, causal_lm_loss

    model, batch, n = _packed_batch(tiny_model, sample_records)
    head = base_causal_lm(model).get_output_embeddings()
    seen: list[int] = []
    hook = head.register_forward_hook(lambda _m, _i, out: seen.append(out.shape[-2] if out.dim() == 3 else out.shape[0]))  # fmt: skip
    try:
        loss = causal_lm_loss(model, batch, num_items=n, chunk_tokens=16)
        loss.backward()
    finally:
        hook.remove()
    assert seen and max(seen) <= 16
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    chunks = -(-labelled // 16)
    assert len(seen) == 1 + 2 * chunks  # kept position, forward chunks, backward recomputes


def test_training_step_loss_is_the_same_with_and_without_chunks(
    tiny_model: Path, records_file: Path, tmp_path: Path
) -> None:
    """Through train() (Accelerator, PEFT, the real loop): the logged losses agree."""

    def run(name: str, chunk: int | None) -> list[float]:
        events: list[dict[str, Any]] = []
        cfg = TrainConfig(
            output=str(tmp_path / name),
            dataset=str(records_file),
            base_model=str(tiny_model),
            context_len=128,
            batch_size=2,
            max_steps=3,
            lora_dropout=0.0,
            eval=False,
            device="cpu",
            loss_chunk_tokens=chunk,
        )
        result = train(cfg, progress_sink=events.append)
        assert result.status is TrainStatus.SUCCESS, result.error
        return [e["loss"] for e in events if e["event"] == "step"]

    full, chunked = run("full", 0), run("chunked", None)
    assert chunked == pytest.approx(full, abs=1e-4)
    assert len(full) == 3
