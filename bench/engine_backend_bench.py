"""In-process transformers vs the llama.cpp engine backend, same prompts, same model (one run).

Both serve the bundled Qwen2.5-Coder-0.5B: in-process from its converted checkpoint (the
loader's default dtype), llama.cpp (llama-cpp-python's server, managed by
:class:`model_runtime.llama_server.LlamaServer`) straight from the Q4_K_M GGUF. Both build the
same token-exact prompt (``prompt_for`` is compared), greedy, our stop rules; KV / prompt
prefix cache on both sides (the engine's reuse, llama.cpp's prefix match).

Figures, measured in the same run, ratio llama.cpp ÷ in-process:

1. **Inline latency in a typing session**: the cursor walks through a line of a real source
   file (this repo's ``model_runtime/stops.py``) one typed character at a time; each keystroke
   asks for a completion (``--new-tokens``) and waits for it. Median and p95 of the
   ``complete`` wall time (the first, cold request excluded).
2. **Decode tok/s** on a block completion (multi-line, up to ``--decode-tokens``).
3. **Tokens after cancel, engine side**: a completion is cancelled after its 4th token. In
   process: tokens the engine's KV cache grew by after the cancel was set. llama.cpp:
   :func:`model_runtime.llama_server.tokens_after_cancel` (a probe prompt = prompt + the
   greedy continuation makes llama.cpp log how much of it its KV cache already holds). Both
   on the same counting prompt, which never stops by itself.

    .venv/bin/python bench/engine_backend_bench.py [--keystrokes 16] [--new-tokens 16]
    .venv/bin/python bench/engine_backend_bench.py --keystrokes 2 --new-tokens 4 \\
        --decode-tokens 8 --context-tokens 256            # smoke run

Needs ``scripts/build_llama_cpp.sh`` (llama-cpp-python[server]).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_runtime.engine import CompletionRequest, Engine  # noqa: E402
from model_runtime.llama_server import COUNTING_PROMPT, tokens_after_cancel  # noqa: E402

DOCUMENT = ROOT / "model_runtime" / "stops.py"


def typing_session(text: str, keystrokes: int, new_tokens: int) -> list[CompletionRequest]:
    """Requests for typing ``keystrokes`` characters of a code line in the file's middle."""
    lines = text.split("\n")
    start = len(lines) // 2
    row = next(i for i in range(start, len(lines)) if len(lines[i].strip()) > keystrokes + 4)
    line = lines[row]
    indent = len(line) - len(line.lstrip())
    before = "\n".join(lines[:row]) + "\n"
    after = "\n" + "\n".join(lines[row + 1 :])
    requests = []
    for typed in range(keystrokes + 1):
        cut = indent + typed
        requests.append(
            CompletionRequest(
                str(DOCUMENT.relative_to(ROOT)),
                before + line[:cut],
                line[cut:] + after if typed == 0 else after,
                max_new_tokens=new_tokens,
                multiline=False,
            )
        )
    return requests


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def session_latency(engine: Any, requests: list[CompletionRequest]) -> tuple[float, float]:
    """(median, p95) seconds of the keystrokes after the first (cold) one."""
    engine.reset_cache()
    times = []
    for index, request in enumerate(requests):
        started = time.perf_counter()
        result = engine.complete(request)
        if getattr(result, "error", ""):
            raise SystemExit(f"engine failed: {result.error}")
        if index:
            times.append(time.perf_counter() - started)
    return statistics.median(times), p95(times)


def decode_speed(engine: Any, request: CompletionRequest) -> float:
    result = engine.complete(request)
    return float(result.tokens_per_s)


def inprocess_after_cancel(engine: Engine, request: CompletionRequest) -> int:
    """Tokens the in-process KV cache grew by after ``cancel`` was set at the 4th token."""
    engine.reset_cache()
    prompt = len(engine.prompt_for(request).input_ids)
    cancel = threading.Event()
    at_cancel: list[int] = []

    def watch() -> None:
        while not cancel.is_set():
            if engine.cached_tokens >= prompt + 4:
                at_cancel.append(engine.cached_tokens)
                cancel.set()
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    engine.complete(request, cancel)
    cancel.set()
    watcher.join()
    return engine.cached_tokens - at_cancel[0] if at_cancel else -1


def block_request(text: str, new_tokens: int) -> CompletionRequest:
    head = text.index("def wants_multiline")
    body = text.index("\n", head) + 1
    return CompletionRequest(
        str(DOCUMENT.relative_to(ROOT)), text[:body], "\n\n" + text[body:].split("\n\n", 1)[-1],
        max_new_tokens=new_tokens, multiline=True,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keystrokes", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--decode-tokens", type=int, default=48)
    parser.add_argument("--context-tokens", type=int, default=1536)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from model_runtime.llama_server import LlamaServer
    from model_runtime.loader import load_model
    from model_runtime.openai_engine import remote_loaded
    from model_runtime.spec import QWEN_CODER_MODEL, bundled_gguf_path

    torch.set_num_threads(args.threads)
    text = DOCUMENT.read_text()
    session = typing_session(text, args.keystrokes, args.new_tokens)
    block = block_request(text, args.decode_tokens)
    cancel_request = CompletionRequest(
        "numbers.py", COUNTING_PROMPT, "", max_new_tokens=48, multiline=True
    )  # the same prompt tokens_after_cancel gives llama.cpp

    started = time.perf_counter()
    local = Engine(load_model(QWEN_CODER_MODEL), context_tokens=args.context_tokens)
    local_load = time.perf_counter() - started
    server = LlamaServer(bundled_gguf_path("qwen2.5-coder-0.5b"), n_threads=args.threads)
    started = time.perf_counter()
    with server:
        remote_load = time.perf_counter() - started
        remote = server.engine(
            remote_loaded(QWEN_CODER_MODEL),
            context_tokens=args.context_tokens,
            first_byte_timeout_s=600.0,
            total_timeout_s=900.0,
        )
        remote.token_healing = local.token_healing = False  # the remote side cannot heal
        assert all(
            local.prompt_for(r).input_ids == remote.prompt_for(r).input_ids for r in session
        ), "the two backends built different prompts"
        local.complete(session[0])  # warm-up (the first call is much slower)
        remote.complete(session[0])
        rows = {
            "in-process": _figures(local, session, block, cancel_request, None),
            "llama.cpp": _figures(remote, session, block, cancel_request, server),
        }
        mismatches = remote.counters["textPromptMismatches"]
    _report(rows, args, local_load, remote_load, mismatches, local.loaded.dtype)


def _figures(
    engine: Any,
    session: list[CompletionRequest],
    block: CompletionRequest,
    cancel_request: CompletionRequest,
    server: Any,
) -> dict[str, float]:
    median, tail = session_latency(engine, session)
    tokps = decode_speed(engine, block)
    if server is None:
        after = inprocess_after_cancel(engine, cancel_request)
    else:
        after = tokens_after_cancel(server)
    return {"median": median, "p95": tail, "tokps": tokps, "after_cancel": after}


def _report(
    rows: dict[str, dict[str, float]],
    args: argparse.Namespace,
    local_load: float,
    remote_load: float,
    mismatches: int,
    dtype: str,
) -> None:
    base, other = rows["in-process"], rows["llama.cpp"]
    print(
        f"\nbundled Qwen2.5-Coder-0.5B, {args.keystrokes} keystrokes, {args.new_tokens} new "
        f"tokens, context {args.context_tokens}, {args.threads} threads; load: in-process "
        f"{local_load:.1f} s ({dtype}), llama.cpp server {remote_load:.1f} s; text prompts "
        f"that did not re-tokenize exactly: {mismatches}\n"
    )
    print("| backend | inline median | inline p95 | decode tok/s | tokens after cancel |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['median'] * 1000:.0f} ms | {row['p95'] * 1000:.0f} ms | "
            f"{row['tokps']:.1f} | {row['after_cancel']:.0f} |"
        )
    ratio = {k: other[k] / base[k] if base[k] else float("nan") for k in ("median", "p95", "tokps")}
    print(
        f"| llama.cpp ÷ in-process | {ratio['median']:.2f} | {ratio['p95']:.2f} | "
        f"{ratio['tokps']:.2f} | |"
    )


if __name__ == "__main__":
    main()
