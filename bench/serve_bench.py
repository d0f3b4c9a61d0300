"""Inline-completion latency through the real server, per model, where users move and type.

    .venv/bin/python bench/serve_bench.py [--models bundled:smollm2-135m,bundled:qwen2.5-coder-0.5b]
        [--positions 10] [--keys 8] [--max-new-tokens 16]

A ``--models`` entry may carry server settings: ``MODEL+setting=value[+...]``, e.g.
``bundled:qwen2.5-coder-0.5b+quantize=int8+contextTokens=1024`` (one server per entry).

For each model one server process (stdio, the user's defaults except ``debounceMs: 0`` and
``maxNewTokens``; torch uses every core, as a user's server does) opens the same real
third-party file (click's ``core.py``, ~3k lines: the prompt is the full ``contextTokens`` budget)
and is measured on the same cursor script:

- **new position**: ``--positions`` cursors on different lines spread over the file, one request
  each (the KV cache holds the previous position's prompt: what anchoring at stable boundaries can
  reuse is reused);
- **typing**: at one position ``--keys`` characters of the real text are typed one by one
  (``didChange`` + inline request, each answer awaited: what a user who pauses after every key
  sees);
- model load time (cached conversion), time to first completion, server peak RSS (VmHWM) and the
  one-time conversion time recorded in the converted model's ``codellama_converted.json``.

Prints median / p95 per phase and model, and each model's medians ÷ the first model's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lsp_server.testing import CompletionClient  # noqa: E402


def source_text() -> tuple[str, str]:
    """(file name, text) of the benchmark document."""
    import click

    path = Path(click.__file__).parent / "core.py"
    return "core.py", path.read_text(encoding="utf-8")


def positions(text: str, n: int) -> list[tuple[int, int]]:
    """``n`` (line, character) cursors mid-line in code lines spread over the file."""
    lines = text.split("\n")
    code = [
        i
        for i, line in enumerate(lines)
        if i > 40 and len(line.strip()) > 16 and not line.strip().startswith(("#", '"', "'"))
    ]
    step = max(1, len(code) // (n + 1))
    out = []
    for i in code[step::step][:n]:
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        out.append((i, indent + (len(line) - indent) // 2))
    return out


def p95(values: list[float]) -> float:
    """95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a process in MB."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def conversion_seconds(model: str) -> float | None:
    """One-time GGUF → safetensors time recorded for a bundled model, if converted."""
    from model_runtime.spec import bundled_cache_path, is_bundled

    if not is_bundled(model):
        return None
    marker = bundled_cache_path(model) / "codellama_converted.json"
    try:
        return float(json.loads(marker.read_text())["seconds"])
    except (OSError, ValueError, KeyError):
        return None


def server_options(entry: str, args: argparse.Namespace) -> dict[str, Any]:
    """Initialization options for one ``--models`` entry: ``MODEL[+setting=value...]``
    (e.g. ``bundled:qwen2.5-coder-0.5b+quantize=int8+contextTokens=1024``) over the bench's
    defaults."""
    model, *extra = entry.split("+")
    options: dict[str, Any] = {"model": model, "debounceMs": 0, "maxNewTokens": args.max_new_tokens}
    if args.context_tokens:
        options["contextTokens"] = args.context_tokens
    if args.dtype != "auto":
        options["dtype"] = args.dtype
    for item in extra:
        key, _, value = item.partition("=")
        options[key] = int(value) if value.isdigit() else value
    return options


async def measure(model: str, args: argparse.Namespace, workspace: Path) -> dict[str, Any]:
    """Run the cursor script against one server process (``model``: a ``--models`` entry)."""
    name, text = source_text()
    options = server_options(model, args)
    async with CompletionClient(init_options=options, root=workspace) as client:
        started = time.perf_counter()
        report = await client.wait_ready(timeout=900)
        ready_s = time.perf_counter() - started
        model_info = report["model"]
        uri = await client.open(workspace / name, text)
        cursors = positions(text, args.positions)
        started = time.perf_counter()
        await client.inline_completion(uri, *cursors[0])  # first completion: warms kernels
        first_s = time.perf_counter() - started
        moved: list[float] = []
        for line, character in cursors[1:] + cursors[:1]:
            started = time.perf_counter()
            await client.inline_completion(uri, line, character)
            moved.append(time.perf_counter() - started)
        # Typing: delete the rest of a line after its middle, then type it back key by key.
        lines = text.split("\n")
        line_no, col = cursors[len(cursors) // 2]
        full = lines[line_no]
        typed: list[float] = []
        for k in range(args.keys + 1):
            lines[line_no] = full[: col + k]
            client.change(uri, "\n".join(lines))
            started = time.perf_counter()
            await client.inline_completion(uri, line_no, col + k)
            if k:  # k = 0 only positions the cursor (a "new position" request)
                typed.append(time.perf_counter() - started)
        status = await client.status()
        process = client.client._server
        rss = peak_rss_mb(process.pid) if process is not None else float("nan")
    completions = status.get("completions", {})
    return {
        "model": model,
        "dtype": model_info.get("dtype"),
        "dtype_reason": model_info.get("dtypeReason"),
        "load_s": model_info.get("loadSeconds"),
        "ready_s": ready_s,
        "first_s": first_s,
        "moved": moved,
        "typed": typed,
        "rss_mb": rss,
        "conversion_s": conversion_seconds(options["model"]),
        "quantize": model_info.get("quantize"),
        "completions": completions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", default="bundled:smollm2-135m,bundled:qwen2.5-coder-0.5b")
    parser.add_argument("--positions", type=int, default=10)
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--context-tokens", type=int, default=0, help="0: the server default")
    parser.add_argument(
        "--dtype", default="auto", help="the servers' dtype setting (auto: what they pick here)"
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tempfile

    workspace = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    results = []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        print(f"# {model} (load {os.getloadavg()[0]:.1f})", flush=True)
        res = asyncio.run(measure(model, args, workspace))
        results.append(res)
        print(
            f"  {res['dtype']} ({res['dtype_reason']}); load {res['load_s']} s, "
            f"ready after {res['ready_s']:.1f} s, first completion {res['first_s']:.2f} s, "
            f"peak RSS {res['rss_mb']:.0f} MB, one-time conversion {res['conversion_s']} s",
            flush=True,
        )
        for phase in ("moved", "typed"):
            values = res[phase]
            print(
                f"  {phase:6s} n={len(values):2d} median {statistics.median(values):.2f} s, "
                f"p95 {p95(values):.2f} s",
                flush=True,
            )
    base = results[0]
    print()
    print(
        f"{'model':56s} {'dtype':9s} {'moved med':>10s} {'p95':>6s} {'typed med':>10s} {'p95':>6s} {'÷ first (moved/typed)':>22s} {'RSS MB':>7s}"
    )
    for res in results:
        mm, tm = statistics.median(res["moved"]), statistics.median(res["typed"])
        ratio = (
            f"{mm / statistics.median(base['moved']):.2f} / "
            f"{tm / statistics.median(base['typed']):.2f}"
        )
        print(
            f"{res['model']:56s} {res['dtype']:9s} {mm:10.2f} {p95(res['moved']):6.2f} "
            f"{tm:10.2f} {p95(res['typed']):6.2f} {ratio:>22s} {res['rss_mb']:7.0f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
