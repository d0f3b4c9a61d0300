"""Generation engine benchmark on the bundled model (SmolLM2-135M, CPU).

Figures, all measured in the same run:

1. **Engine vs direct ``generate``** -- the same prompt ids (``Engine.prompt_for``), greedy,
   the same number of new tokens (stop rules and stop tokens off so both produce exactly N):
   ``model.generate`` median latency is the baseline; the ratio is engine ÷ generate (KV reuse
   off, so both do the same work). The server's LSP latency bench divides by the same baseline
   (:func:`generate_latency`).
2. **KV prefix reuse** -- a ~1.5k-token prompt of real code (this repo's runtime sources): cold
   (empty cache) vs hit (the same document after the user typed two more characters). Ratio
   hit ÷ cold of the whole completion latency (N new tokens each), and of time-to-first-token.
3. **Decode tokens/s**, **prompt-lookup decoding** speed-up on a copy-heavy completion, and
   **peak RSS**.

    .venv/bin/python bench/engine_bench.py [--samples 5] [--new-tokens 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE_PREFIX = '''import math


def circle_area(radius: float) -> float:
    """Area of a circle."""
    return math.pi * radius ** 2


def rectangle_area(width: float, height: float) -> float:
    """Area of a rectangle."""
    '''
SAMPLE_SUFFIX = "\n\n\nprint(circle_area(2.0), rectangle_area(2.0, 3.0))\n"


def _forced(loaded: Any) -> Any:
    """The same model with no stop tokens (exactly ``max_new_tokens`` are generated)."""
    template = dataclasses.replace(loaded.template, stop_ids=frozenset())
    return dataclasses.replace(loaded, template=template)


def _no_stop_rules() -> None:
    from model_runtime import engine as engine_module

    engine_module.truncate_completion = lambda text, *a, **k: (text, False)


def generate_latency(loaded: Any, input_ids: list[int], new_tokens: int) -> float:
    """Seconds for ``model.generate`` (greedy, exactly ``new_tokens``) on ``input_ids``."""
    import torch

    ids = torch.tensor([input_ids], device=loaded.device)
    started = time.perf_counter()
    with torch.inference_mode():
        loaded.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=loaded.tokenizer.eos_token_id,
        )
    return time.perf_counter() - started


def _runtime_sources() -> str:
    files = sorted((ROOT / "model_runtime").glob("*.py"))
    return "".join(f.read_text(encoding="utf-8") for f in files)


def _load(model: str) -> Any:
    """Resolve and load ``model`` (stop tokens off), printing the times."""
    import torch

    from model_runtime.loader import load_model
    from model_runtime.spec import resolve_model

    started = time.perf_counter()
    resolve_model(model)
    resolve_s = time.perf_counter() - started
    started = time.perf_counter()
    loaded = _forced(load_model(model))
    load_s = time.perf_counter() - started
    print(f"model {model}: resolve {resolve_s:.2f} s, load {load_s:.2f} s, "
          f"template {loaded.template.name}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    return loaded


def _direct_figure(loaded: Any, samples: int, n: int) -> None:
    """1. engine vs direct generate."""
    from model_runtime.engine import CompletionRequest, Engine

    median = statistics.median
    request = CompletionRequest("shapes.py", SAMPLE_PREFIX, SAMPLE_SUFFIX, max_new_tokens=n)
    # No token healing: generate() continues the plain prompt, so both produce exactly n tokens.
    engine = Engine(loaded, kv_reuse=False, token_healing=False)
    prompt = engine.prompt_for(request)  # the ids complete() prefills
    engine.complete(request)  # warm-up (first calls are slow)
    generate_latency(loaded, prompt.input_ids, n)
    gen_times, eng_times, tps = [], [], []
    for _ in range(samples):
        gen_times.append(generate_latency(loaded, prompt.input_ids, n))
        result = engine.complete(request)
        assert result.tokens == n, result
        eng_times.append(result.latency_s)
        tps.append(result.tokens_per_s)
    gen, eng = median(gen_times), median(eng_times)
    print(f"[direct] prompt {len(prompt.input_ids)} tok, {n} new tokens: generate median "
          f"{gen * 1000:.0f} ms, engine median {eng * 1000:.0f} ms, engine/generate "
          f"{eng / gen:.3f}; decode {median(tps):.1f} tok/s")  # fmt: skip


def _reuse_figure(loaded: Any, samples: int, n: int) -> None:
    """2. KV prefix reuse at ~1.5k tokens."""
    from model_runtime.engine import CompletionRequest, Engine

    median = statistics.median
    source = _runtime_sources()
    engine = Engine(loaded, kv_reuse=True, context_tokens=1536)
    cold_t, hit_t, cold_ttft, hit_ttft, reused, prompt_len = [], [], [], [], [], []
    for sample in range(samples):
        cut = len(source) // 2 + 1000 * sample
        cut = source.index("\n", cut) + 1
        prefix = source[:cut] + "    "
        engine.reset_cache()
        cold = engine.complete(CompletionRequest("runtime.py", prefix, "\n", max_new_tokens=n))
        hit = engine.complete(
            CompletionRequest("runtime.py", prefix + "re", "\n", max_new_tokens=n)
        )
        cold_t.append(cold.latency_s)
        hit_t.append(hit.latency_s)
        cold_ttft.append(cold.first_token_s)
        hit_ttft.append(hit.first_token_s)
        reused.append(hit.reused_tokens)
        prompt_len.append(hit.prompt_tokens)
    print(f"[reuse] prompt ~{median(prompt_len):.0f} tok (reused {median(reused):.0f}), {n} new "
          f"tokens: cold {median(cold_t) * 1000:.0f} ms, hit {median(hit_t) * 1000:.0f} ms, "
          f"hit/cold {median(hit_t) / median(cold_t):.3f}; time to first token cold "
          f"{median(cold_ttft) * 1000:.0f} ms, hit {median(hit_ttft) * 1000:.0f} ms, "
          f"hit/cold {median(hit_ttft) / median(cold_ttft):.3f}")  # fmt: skip


def _lookup_figure(loaded: Any, samples: int, n: int) -> None:
    """3. prompt-lookup decoding on a completion that copies context."""
    from model_runtime.engine import CompletionRequest, Engine

    median = statistics.median
    copy_prefix = SAMPLE_PREFIX.replace('    """Area of a rectangle."""\n    ', "    return width * height\n\n\n") + (
        'def circle_area_again(radius: float) -> float:\n    """Area of a circle."""\n'
    )  # fmt: skip
    copy_request = CompletionRequest("shapes.py", copy_prefix, "\n", max_new_tokens=n)
    plain = Engine(loaded, kv_reuse=False)
    lookup = Engine(loaded, kv_reuse=False, prompt_lookup=True, prompt_lookup_num_tokens=10)
    plain.complete(copy_request)
    lookup.complete(copy_request)
    plain_t, lookup_t, passes = [], [], []
    for _ in range(samples):
        a = plain.complete(copy_request)
        b = lookup.complete(copy_request)
        assert a.raw_text == b.raw_text, (a.raw_text, b.raw_text)
        plain_t.append(a.latency_s)
        lookup_t.append(b.latency_s)
        passes.append(b.forward_passes)
    print(f"[lookup] {n} tokens copied from context: greedy {median(plain_t) * 1000:.0f} ms, "
          f"prompt-lookup {median(lookup_t) * 1000:.0f} ms ({median(passes):.0f} decode passes), "
          f"lookup/greedy {median(lookup_t) / median(plain_t):.3f} (identical text)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=5, help="timed runs per figure")
    parser.add_argument("--new-tokens", type=int, default=16, help="tokens per completion")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument("--model", default="bundled:smollm2-135m")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = _load(args.model)
    _no_stop_rules()
    _direct_figure(loaded, args.samples, args.new_tokens)
    _reuse_figure(loaded, args.samples, args.new_tokens)
    _lookup_figure(loaded, args.samples, args.new_tokens)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"[memory] peak RSS {peak_mb:.0f} MB; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
