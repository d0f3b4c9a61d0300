"""Token-healing overhead micro-benchmark, with Qwen2.5-Coder's 151,936-token vocabulary.

Cursor positions: every ``--stride``-th character of an installed third-party package's source
(``click/core.py``), restricted to mid-identifier cursors (the case token healing is for) plus
as many other positions. Figures, all from the same run:

1. **Warm-up**: building the tokenizer's decoded-vocabulary table (once per tokenizer).
2. **Healing compute per request**: ``Engine._heal_text`` (tokenize the prefix's tail, walk
   back) + one constrained ``_pick`` per re-created token, minus the plain ``argmax`` those
   steps would cost without healing -- ms per request (mean, p95). Goal: <= 1 ms.
3. **End to end**: ``Engine.complete`` on a tiny random Llama with Qwen's vocabulary (so the
   forward pass is cheap and the engine's own work shows), healing on vs off, same requests:
   ms per request and the ratio. The ratio also contains the extra decode steps healing
   spends re-creating the removed characters (``--model`` a real one to see their cost).

    .venv/bin/python bench/healing_bench.py [--samples 200] [--new-tokens 4] [--stride 97]
    .venv/bin/python bench/healing_bench.py --model bundled:qwen2.5-coder-0.5b --samples 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _positions(text: str, samples: int, stride: int) -> list[int]:
    """Cursor offsets: half mid-identifier (a word character on both sides), half any."""
    inside: list[int] = []
    other: list[int] = []
    for offset in range(stride, len(text) - 1, stride):
        before, after = text[offset - 1], text[offset]
        word = (before.isalnum() or before == "_") and (after.isalnum() or after == "_")
        (inside if word else other).append(offset)
    half = samples // 2
    return sorted(inside[:half] + other[: samples - len(inside[:half])])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _loaded(args: argparse.Namespace) -> Any:
    from transformers import AutoTokenizer

    from model_runtime.loader import load_model
    from model_runtime.spec import QWEN_CODER_MODEL, resolve_model
    from model_runtime.tiny import in_memory, tiny_llama

    if args.model:
        return load_model(args.model, device="cpu")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(QWEN_CODER_MODEL))
    model = tiny_llama(tokenizer, hidden_size=48, tie_word_embeddings=False)
    return in_memory(model, tokenizer, model_id="tiny-with-qwen-vocabulary")


def _healing_compute(loaded: Any, table: Any, source: str, positions: list[int]) -> None:
    """2. Healing compute: plan + constrained picks (following the tokens the model would need:
    the prefix's own tail tokens), minus plain argmax steps."""
    import torch

    from model_runtime.engine import Engine
    from model_runtime.healing import advance

    tokenizer = loaded.tokenizer
    healer = Engine(loaded, kv_reuse=False)
    healer._pick(torch.zeros(len(tokenizer)), " ")  # the device copy of the table ids
    logits = torch.randn(len(tokenizer))
    overheads: list[float] = []
    steps_total = 0
    healed_count = 0
    for offset in positions:
        prefix = source[:offset]
        t0 = time.perf_counter()
        heal = healer._heal_text(prefix)
        spent = time.perf_counter() - t0
        remaining = heal
        produced = ""
        steps = 0
        while remaining:
            t0 = time.perf_counter()
            healer._pick(logits, remaining)
            spent += time.perf_counter() - t0
            # Advance along the longest token that re-creates part of the text (as a model
            # that continues the word would): the number of steps a real request spends.
            options = table.candidates(remaining)
            text = max((table.text_of[t] for t in options), key=len)
            produced += text
            t0 = time.perf_counter()
            remaining, _ = advance(heal, produced)
            spent += time.perf_counter() - t0
            steps += 1
        t0 = time.perf_counter()
        for _ in range(steps):
            int(logits.argmax())
        overheads.append((spent - (time.perf_counter() - t0)) * 1000)
        steps_total += steps
        healed_count += bool(heal)
    mean = statistics.fmean(overheads)
    median = statistics.median(overheads)
    print(f"healing compute: {median:.3f} ms/request median, {mean:.3f} mean, p95 "
          f"{_percentile(overheads, 0.95):.3f} "
          f"ms ({healed_count}/{len(positions)} healed, {steps_total / len(positions):.2f} "
          f"constrained steps/request); goal <= 1 ms")  # fmt: skip


def _end_to_end(loaded: Any, source: str, positions: list[int], new_tokens: int) -> None:
    """3. End to end, healing on vs off (KV reuse off: every request is a cold prefill)."""
    from model_runtime.engine import CompletionRequest, Engine

    def run(engine: Engine) -> list[float]:
        times = []
        for offset in positions:
            request = CompletionRequest(
                "click/core.py",
                source[:offset],
                source[offset:],
                max_new_tokens=new_tokens,
                context_tokens=512,
            )
            t0 = time.perf_counter()
            engine.complete(request)
            times.append((time.perf_counter() - t0) * 1000)
        return times

    on = Engine(loaded, kv_reuse=False, token_healing=True)
    off = Engine(loaded, kv_reuse=False, token_healing=False)
    run(on)  # warm both paths once
    run(off)
    healed_ms = statistics.median(run(on))
    plain_ms = statistics.median(run(off))
    print(f"end to end ({new_tokens} new tokens, 512-token prompts): healing "
          f"{healed_ms:.2f} ms/request vs off {plain_ms:.2f} ms/request (median), ratio "
          f"{healed_ms / plain_ms:.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--new-tokens", type=int, default=4)
    parser.add_argument("--stride", type=int, default=97)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="", help="a real model spec (default: tiny, Qwen vocab)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import click
    import torch

    from model_runtime.healing import heal_table

    torch.set_num_threads(args.threads)
    source_path = Path(click.__file__).with_name("core.py")
    source = source_path.read_text(encoding="utf-8")
    positions = _positions(source, args.samples, args.stride)
    loaded = _loaded(args)
    tokenizer = loaded.tokenizer
    print(f"model {loaded.model_id}, vocabulary {len(tokenizer):,}, {len(positions)} cursors "
          f"in {source_path.parent.name}/{source_path.name}")  # fmt: skip

    started = time.perf_counter()
    table = heal_table(tokenizer)
    print(f"warm-up: vocabulary table of {len(table.texts):,} tokens built in "
          f"{time.perf_counter() - started:.2f} s (once per tokenizer)")  # fmt: skip
    _healing_compute(loaded, table, source, positions)
    _end_to_end(loaded, source, positions, args.new_tokens)


if __name__ == "__main__":
    main()
