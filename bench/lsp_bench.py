"""LSP server speed: latency vs the direct engine, keystroke storm, typed-through, initialize, RSS.

    .venv/bin/python bench/lsp_bench.py [--model bundled:smollm2-135m] [--samples 20]

Everything is measured in one run, against baselines from the same run:

- **latency ratio**: median wall time of ``textDocument/inlineCompletion`` through the real server
  process (stdio, ``debounceMs: 0``) ÷ median wall time of ``Engine.complete`` called directly in
  this process with the same prompts and settings; samples are interleaved (direct i, LSP i) so
  background load hits both alike. Each sample is a distinct document, so no cache answers.
- **keystroke storm**: 10 keystrokes 50 ms apart, each followed by an inline request and a
  ``$/cancelRequest`` of the previous one (what VS Code does); server CPU time for the storm ÷ CPU
  time of one completion, and the last answer's delay after the last key ÷ one completion's
  latency. Run with the default debounce and with ``debounceMs: 0`` (pure cancellation).
- **typed-through**: requests after typing 1..8 characters of a shown completion.
- **initialize**: cold (spawn → response) and warm (process idle 2 s, then the request).
- **peak RSS** of the server process (``VmHWM``).
"""

from __future__ import annotations

import argparse
import asyncio
import os

# One intra-op thread in both processes: on a shared 2-core machine, OpenMP spin-waiting of two
# multi-threaded torch processes makes timings meaningless. Same setting for both sides.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lsp_server.testing import CompletionClient  # noqa: E402

CORPUS_FILES = [
    "lsp_server/completion_service.py",
    "lsp_server/model_host.py",
    "lsp_server/settings.py",
]


def cut_points(n: int) -> list[tuple[str, str, int, int]]:
    """``n`` (text, path, line, character) cursor positions inside code lines of real files."""
    points: list[tuple[str, str, int, int]] = []
    texts = [(p, (ROOT / p).read_text(encoding="utf-8")) for p in CORPUS_FILES]
    for path, text in texts:
        lines = text.split("\n")
        candidates = [
            i
            for i, line in enumerate(lines)
            if i > 20 and len(line.strip()) > 12 and not line.strip().startswith(("#", '"', "'"))
        ]
        step = max(1, len(candidates) // (n // len(texts) + 1))
        for i in candidates[::step]:
            line = lines[i]
            indent = len(line) - len(line.lstrip())
            col = indent + (len(line) - indent) // 2  # mid-line: a realistic single-line infill
            points.append((text, path, i, col))
    return points[:n]


def offset_of(text: str, line: int, character: int) -> int:
    lines = text.split("\n")
    return sum(len(x) + 1 for x in lines[:line]) + character


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def server_pid(client: CompletionClient) -> int:
    process = client.client._server
    assert process is not None
    return process.pid


async def measure_initialize(options: dict[str, Any]) -> tuple[float, float]:
    cold = CompletionClient(init_options=options)
    started = time.perf_counter()
    await cold.start()
    cold_s = time.perf_counter() - started
    await cold.close()
    warm = CompletionClient(init_options=options)
    await warm.client.start_io(*warm.command)
    await asyncio.sleep(2.0)
    started = time.perf_counter()
    await warm.client.initialize_async(
        types.InitializeParams(
            process_id=os.getpid(),
            capabilities=types.ClientCapabilities(),
            initialization_options=options,
        )
    )
    warm_s = time.perf_counter() - started
    warm.client.initialized(types.InitializedParams())
    await warm.close()
    return cold_s, warm_s


async def latency(
    client: CompletionClient, engine: Any, settings: dict[str, Any], samples: int
) -> dict[str, Any]:
    from model_runtime.engine import CompletionRequest

    direct: list[float] = []
    served: list[float] = []
    for k, (text, path, line, character) in enumerate(cut_points(samples)):
        offset = offset_of(text, line, character)
        name = f"bench_{k}_{Path(path).name}"  # distinct document per sample, same path both ways
        request = CompletionRequest(
            path=name,
            prefix=text[:offset],
            suffix=text[offset:],
            language="python",
            max_new_tokens=settings["maxNewTokens"],
            context_tokens=settings["contextTokens"],
        )
        started = time.perf_counter()
        engine.complete(request)
        direct.append(time.perf_counter() - started)
        uri = await client.open(ROOT / name, text)
        started = time.perf_counter()
        await client.inline_completion(uri, line, character)
        served.append(time.perf_counter() - started)
        print(
            f"  sample {k:2d}: direct {direct[-1] * 1000:7.1f} ms   lsp {served[-1] * 1000:7.1f} ms",
            flush=True,
        )
    return {
        "direct_median": statistics.median(direct),
        "lsp_median": statistics.median(served),
        "ratio": statistics.median(served) / statistics.median(direct),
        "n": len(direct),
    }


async def storm(client: CompletionClient, debounce_ms: int) -> dict[str, Any]:
    """One completion alone, then 10 keystrokes 50 ms apart, each request cancelling the last."""
    client.configuration["debounceMs"] = debounce_ms
    client.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=None)
    )
    await asyncio.sleep(0.5)
    pid = server_pid(client)
    base = (
        "def total_price(items, tax_rate):\n    subtotal = sum(item.price for item in items)\n    "
    )
    word = "return sub"  # ten keys

    # The baseline completes the storm's final text alone, in the same file (the path is in the
    # prompt): the same prompt, so the same model work as the storm's last request.
    path = ROOT / f"storm_{debounce_ms}.py"
    uri = await client.open(path, base + word)
    cpu0, started = cpu_seconds(pid), time.perf_counter()
    await client.inline_completion(uri, 2, 4 + len(word))
    single_s, single_cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu0
    # Forget it before the storm: closing drops its typed-through entry, and a completion in
    # another file replaces the engine's KV cache, so the storm's last request starts cold too.
    client.client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    other = await client.open(ROOT / "storm_other.py", "import os\n\n\ndef main():\n    ")
    await client.inline_completion(other, 4, 4)

    uri = await client.open(path, base)
    pending: list[tuple[str, asyncio.Future[Any]]] = []
    cpu0 = cpu_seconds(pid)
    for i in range(len(word)):
        typed = word[: i + 1]
        client.change(uri, base + typed)
        if pending:
            msg_id, _ = pending[-1]
            client.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
        msg_id = f"storm-{debounce_ms}-{i}"
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=2, character=4 + len(typed)),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
        future = client.client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id
        )
        pending.append((msg_id, future))
        last_key = time.perf_counter()
        if i < len(word) - 1:
            await asyncio.sleep(0.05)
    results = await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
    last_s = time.perf_counter() - last_key
    await asyncio.sleep(0.3)  # let cancelled work (if any) finish before reading CPU time
    storm_cpu = cpu_seconds(pid) - cpu0
    cancelled = sum(isinstance(r, Exception) for r in results[:-1])
    last = results[-1]
    answered = not isinstance(last, Exception) and bool(last and last.items)
    return {
        "debounce_ms": debounce_ms,
        "single_s": single_s,
        "single_cpu": single_cpu,
        "storm_cpu": storm_cpu,
        "cpu_ratio": storm_cpu / single_cpu if single_cpu else float("nan"),
        "last_s": last_s,
        "last_ratio": last_s / single_s,
        "cancelled_requests": cancelled,
        "last_answered": answered,
    }


async def typed_through(client: CompletionClient) -> list[float]:
    text = "import math\n\n\ndef area(radius):\n    "
    uri = await client.open(ROOT / "typed_through.py", text)
    shown = ""
    for _ in range(3):  # find a context where the model proposes something typeable
        shown = await client.inline_completion(uri, 4, 4)
        if len(shown) > 2:
            break
    timings: list[float] = []
    for n in range(1, min(9, len(shown))):
        client.change(uri, text + shown[:n])
        started = time.perf_counter()
        rest = await client.inline_completion(uri, 4, 4 + n)
        timings.append(time.perf_counter() - started)
        assert rest == shown[n:], (rest, shown[n:])
    return timings


def print_storm(s: dict[str, Any]) -> None:
    """One line per storm run."""
    print(
        f"storm debounce={s['debounce_ms']} ms: single {s['single_s'] * 1000:.0f} ms / "
        f"{s['single_cpu']:.2f} s CPU; storm CPU {s['storm_cpu']:.2f} s → ratio {s['cpu_ratio']:.2f}; "
        f"last answer {s['last_s'] * 1000:.0f} ms after last key → ratio {s['last_ratio']:.2f}; "
        f"cancelled {s['cancelled_requests']}/9, last answered {s['last_answered']}"
    )


async def main(args: argparse.Namespace) -> None:
    settings = {
        "model": args.model,
        "debounceMs": 0,
        "maxNewTokens": args.max_new_tokens,
        "contextTokens": 1536,
    }
    print(f"# lsp_bench  model={args.model}  samples={args.samples}  load={os.getloadavg()}")
    if args.storm_only:
        async with CompletionClient(init_options=settings, root=ROOT) as client:
            await client.wait_ready(600)
            for s in [await storm(client, 75), await storm(client, 0)]:
                print_storm(s)
        return
    cold_s, warm_s = await measure_initialize({"model": args.model})
    print(
        f"initialize: cold spawn→response {cold_s * 1000:.0f} ms; warm request {warm_s * 1000:.0f} ms"
    )

    from model_runtime.engine import Engine
    from model_runtime.loader import load_model

    engine = Engine(load_model(args.model, device="cpu"))
    from model_runtime.engine import CompletionRequest

    engine.complete(CompletionRequest("warmup.py", "def main():\n    ", "", max_new_tokens=2))
    async with CompletionClient(init_options=settings, root=ROOT) as client:
        await client.wait_ready(600)
        lat = await latency(client, engine, settings, args.samples)
        print(
            f"latency: direct median {lat['direct_median'] * 1000:.1f} ms, LSP median "
            f"{lat['lsp_median'] * 1000:.1f} ms, ratio {lat['ratio']:.3f} (n={lat['n']})"
        )
        tt = await typed_through(client)
        if tt:
            print(
                f"typed-through: median {statistics.median(tt) * 1000:.2f} ms, max {max(tt) * 1000:.2f} ms (n={len(tt)})"
            )
        storms = [await storm(client, 75), await storm(client, 0)]
        for s in storms:
            print_storm(s)
        rss = peak_rss_mb(server_pid(client))
        print(f"server peak RSS: {rss:.0f} MB")
        status = await client.status()
        print(f"server status: {status['completions']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="bundled:smollm2-135m")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--storm-only", action="store_true", help="only the keystroke storms")
    asyncio.run(main(parser.parse_args()))
