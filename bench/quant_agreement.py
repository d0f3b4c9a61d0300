"""Greedy agreement of weight-only int8 / int4 serving with bf16 on real code prompts.

    .venv/bin/python bench/quant_agreement.py [--prompts 20] [--prompt-tokens 256] [--new-tokens 16]

Prompts: ``--prompts`` cuts of click's source (a real third-party package), each the
``--prompt-tokens`` tokens before the start of a line inside a file. The bf16 model decodes
``--new-tokens`` greedy tokens per prompt through our engine; every quantised row does the same
and is compared with it: prompts whose tokens are all identical, the mean number of tokens
before the first difference, and teacher-forced top-1 agreement (the quantised model's argmax
at each position of bf16's continuation). Not a pass/fail test: it decides ``quantize: auto``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
MODEL = "bundled:qwen2.5-coder-0.5b"


def code_prompts(tokenizer: Any, count: int, length: int) -> list[list[int]]:
    """``count`` prompts of ``length`` tokens ending at a line start, spread over click's files."""
    import click

    files = sorted(p for p in Path(click.__file__).parent.glob("*.py") if p.stat().st_size > 8000)
    prompts: list[list[int]] = []
    per_file = max(1, -(-count // len(files)))
    for path in files:
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        for k in range(per_file):
            cut_line = int(len(lines) * (k + 1) / (per_file + 1))
            while cut_line < len(lines) and not lines[cut_line].startswith("    "):
                cut_line += 1  # inside a function or class body
            head = "".join(lines[:cut_line])
            ids = tokenizer(head, add_special_tokens=False).input_ids[-length:]
            prompts.append([int(t) for t in ids])
    return prompts[:count]


def greedy(engine: Any, ids: list[int], new: int) -> list[int]:
    from decode_bench import engine_decode

    return engine_decode(engine, ids, new)[2]


def forced_agreement(engine: Any, ids: list[int], reference: list[int]) -> int:
    """Positions where the engine's argmax equals ``reference`` with ``reference`` fed in one
    token at a time, as decoding does (a quantised model runs prompt chunks through its float
    layers and single tokens through the int kernels: one pass over ``ids + reference`` would
    measure the float layers)."""
    import torch

    engine.reset_cache()
    agree = 0
    with torch.inference_mode():
        logits, _ = engine._prefill(ids, None)
        for position, token in enumerate(reference):
            agree += int(logits.argmax()) == token
            if position + 1 < len(reference):
                logits = engine._forward([token], 1)[-1]
    engine.reset_cache()
    return agree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--modes", default="int8,int4")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from model_runtime.engine import Engine
    from model_runtime.loader import load_model

    torch.set_num_threads(args.threads)
    base = load_model(MODEL, dtype="auto", quantize="none")
    prompts = code_prompts(base.tokenizer, args.prompts, args.prompt_tokens)
    engine = Engine(base)
    started = time.perf_counter()
    reference = [greedy(engine, ids, args.new_tokens) for ids in prompts]
    print(
        f"# {MODEL} {base.dtype}: {len(prompts)} prompts x {args.new_tokens} tokens "
        f"in {time.perf_counter() - started:.0f} s, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    del engine, base
    for mode in args.modes.split(","):
        loaded = load_model(MODEL, dtype="auto", quantize=mode)
        engine = Engine(loaded)
        same = first_diff = forced = 0
        for ids, ref in zip(prompts, reference, strict=True):
            out = greedy(engine, ids, args.new_tokens)
            diff = next((i for i, (a, b) in enumerate(zip(out, ref, strict=True)) if a != b), None)
            same += diff is None
            first_diff += len(ref) if diff is None else diff
            forced += forced_agreement(engine, ids, ref)
        n = len(prompts)
        print(
            f"{mode:6s} identical {same}/{n}  mean tokens before a difference "
            f"{first_diff / n:.1f}/{args.new_tokens}  teacher-forced top-1 "
            f"{100 * forced / (n * args.new_tokens):.1f} %  (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        del engine, loaded


if __name__ == "__main__":
    main()
