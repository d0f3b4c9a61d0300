"""Prefill and decode speed of the bundled code model: our engine vs transformers vs llama.cpp.

    .venv/bin/python bench/decode_bench.py [--prompt-tokens 512] [--new-tokens 32] [--repeats 3]

The same prompt (the first ``--prompt-tokens`` tokens of a real third-party source file, click's
``core.py``) is run greedily, ``--new-tokens`` tokens, in one process, rows interleaved per repeat
so background load hits them alike:

- ``hf-fp32`` / ``hf-bf16``: transformers ``generate`` (the issue's baseline rows);
- ``engine-<dtype>``: our :class:`~model_runtime.engine.Engine` decode loop (what the server
  runs), fed the same ids through its prefill/step functions;
- ``engine-int8`` / ``engine-int4``: the same engine on weight-only quantised linear layers
  (``load_model(quantize=...)``, :mod:`model_runtime.quant`), ``--quantize`` picks them;
- ``llama.cpp``: ``llama-cpp-python`` on the very same GGUF (Q4_K_M weights), same thread count,
  if it is installed (``CMAKE_ARGS=-DGGML_NATIVE=ON pip install --no-deps
  llama-cpp-python==0.3.36 diskcache``; it builds llama.cpp from source, ~7 min here).

Prints prefill seconds, decode tokens/s, whether greedy tokens equal the fp32 ones, and every
row's decode tok/s ÷ llama.cpp's (the issue's goal: ≥ 0.8) and prefill ÷ llama.cpp's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = "bundled:qwen2.5-coder-0.5b"


def prompt_ids(tokenizer: Any, n: int) -> list[int]:
    """The first ``n`` tokens of click's core.py, ending mid-file (the model keeps going)."""
    import click

    text = (Path(click.__file__).parent / "core.py").read_text(encoding="utf-8")
    ids = tokenizer(text, add_special_tokens=False).input_ids
    return [int(t) for t in ids[:n]]


def hf_generate(model: Any, ids: list[int], new: int) -> tuple[float, float, list[int]]:
    """(prefill s, decode tok/s, tokens) with transformers ``generate``."""
    import torch

    x = torch.tensor([ids])
    with torch.inference_mode():
        t0 = time.perf_counter()
        model.generate(x, max_new_tokens=1, do_sample=False)
        t1 = time.perf_counter()
        out = model.generate(x, max_new_tokens=new, min_new_tokens=new, do_sample=False)
        t2 = time.perf_counter()
    prefill = t1 - t0
    decode = (new - 1) / max(t2 - t1 - prefill, 1e-9)
    return prefill, decode, [int(t) for t in out[0, len(ids) :]]


def engine_decode(engine: Any, ids: list[int], new: int) -> tuple[float, float, list[int]]:
    """(prefill s, decode tok/s, tokens) through the engine's own prefill and step loop."""
    import torch

    engine.reset_cache()
    with torch.inference_mode():
        t0 = time.perf_counter()
        logits, _ = engine._prefill(ids, None)
        tokens = [int(logits.argmax())]
        t1 = time.perf_counter()
        while len(tokens) < new:
            tokens.append(int(engine._forward([tokens[-1]], 1)[-1].argmax()))
        t2 = time.perf_counter()
    engine.reset_cache()
    return t1 - t0, (new - 1) / (t2 - t1), tokens


def llama_cpp_decode(llm: Any, ids: list[int], new: int) -> tuple[float, float, list[int]]:
    """(prefill s, decode tok/s, tokens) with llama.cpp: eval the prompt, then greedy steps."""
    import numpy as np

    llm.reset()
    t0 = time.perf_counter()
    llm.eval(ids)
    tokens = [int(np.argmax(llm.scores[llm.n_tokens - 1]))]
    t1 = time.perf_counter()
    while len(tokens) < new:
        llm.eval([tokens[-1]])
        tokens.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
    t2 = time.perf_counter()
    return t1 - t0, (new - 1) / (t2 - t1), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-fp32", action="store_true", help="no fp32 rows (faster)")
    parser.add_argument(
        "--quantize", default="int8,int4", help="engine rows with these quantize modes ('' none)"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from model_runtime.engine import Engine
    from model_runtime.loader import load_model
    from model_runtime.spec import bundled_gguf_path

    torch.set_num_threads(args.threads)
    rows: dict[str, Any] = {}
    loaded_bf16 = load_model(MODEL, dtype="auto", quantize="none")
    ids = prompt_ids(loaded_bf16.tokenizer, args.prompt_tokens)
    rows["hf-bf16"] = lambda: hf_generate(loaded_bf16.model, ids, args.new_tokens)
    engine_bf16 = Engine(loaded_bf16)
    rows[f"engine-{loaded_bf16.dtype}"] = lambda: engine_decode(engine_bf16, ids, args.new_tokens)
    for mode in filter(None, args.quantize.split(",")):
        engine_q = Engine(load_model(MODEL, dtype="auto", quantize=mode))
        rows[f"engine-{mode}"] = lambda e=engine_q: engine_decode(e, ids, args.new_tokens)
    if not args.skip_fp32:
        loaded_fp32 = load_model(MODEL, dtype="float32")
        engine_fp32 = Engine(loaded_fp32)
        rows["hf-fp32"] = lambda: hf_generate(loaded_fp32.model, ids, args.new_tokens)
        rows["engine-float32"] = lambda: engine_decode(engine_fp32, ids, args.new_tokens)
    if importlib.util.find_spec("llama_cpp") is not None:
        from llama_cpp import Llama

        llm = Llama(
            model_path=str(bundled_gguf_path("qwen2.5-coder-0.5b")),
            n_ctx=args.prompt_tokens + args.new_tokens + 16,
            n_threads=args.threads,
            n_batch=args.prompt_tokens,
            logits_all=True,
            verbose=False,
        )
        rows["llama.cpp"] = lambda: llama_cpp_decode(llm, ids, args.new_tokens)
    else:
        print("# llama-cpp-python not installed: no llama.cpp row (see the docstring)")

    results: dict[str, list[tuple[float, float, list[int]]]] = {name: [] for name in rows}
    for run in rows.values():  # warm-up: first calls allocate and JIT
        run()
    for _ in range(args.repeats):
        for name, run in rows.items():
            results[name].append(run())
    print(
        f"# {MODEL}, {len(ids)}-token prompt, {args.new_tokens} new tokens, "
        f"{args.threads} threads, {args.repeats} repeats (median), load {os.getloadavg()[0]:.1f}"
    )
    reference = results.get("hf-fp32", results["hf-bf16"])[0][2]
    ref_name = "hf-fp32" if "hf-fp32" in results else "hf-bf16"
    cpp = results.get("llama.cpp")
    cpp_decode = statistics.median(r[1] for r in cpp) if cpp else None
    cpp_prefill = statistics.median(r[0] for r in cpp) if cpp else None
    print(
        f"{'row':16s} {'prefill s':>10s} {'decode tok/s':>13s} {'same tokens as ' + ref_name:>26s}"
        f" {'decode ÷ llama.cpp':>19s} {'prefill ÷ llama.cpp':>20s}"
    )
    for name, runs in results.items():
        prefill = statistics.median(r[0] for r in runs)
        decode = statistics.median(r[1] for r in runs)
        tokens = runs[0][2]
        same = next(
            (i for i, (a, b) in enumerate(zip(tokens, reference, strict=False)) if a != b), None
        )
        agree = "identical" if same is None else f"diverge at {same}"
        ratio = f"{decode / cpp_decode:.2f}" if cpp_decode else "-"
        pratio = f"{prefill / cpp_prefill:.2f}" if cpp_prefill else "-"
        print(f"{name:16s} {prefill:10.2f} {decode:13.1f} {agree:>26s} {ratio:>19s} {pratio:>20s}")


if __name__ == "__main__":
    main()
