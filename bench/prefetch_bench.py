"""Being ready before the user asks: first completion after opening a file, and Tab chains.

    .venv/bin/python bench/prefetch_bench.py [--model MODEL] [--samples 8] [--chain 3]
    .venv/bin/python bench/prefetch_bench.py --tiny --samples 2 --chain 2   # smoke run

Two real server processes over stdio, identical except for the ``prefetch`` setting, measured in
the same run with interleaved samples (on i, off i); before a sample is measured on one server
the other is idle (no background job), so they never compete for the CPU.

- **first completion after didOpen**: open a distinct real source file, wait ``--dwell`` seconds
  (the user looks at the file; the prefetching server prefills meanwhile), then request an
  inline completion at the first code line after ``--open-cursor-chars`` characters. LSP does
  not tell the server the cursor on open, so it prefills the file's first prompt window: this
  measures cursors inside it (near the top of a file); deeper cursors gain nothing on open. Median wall time,
  prefetch on ÷ off, and the prompt tokens reused from the cache (status ``lastReusedTokens``).
- **Tab chain**: request a completion, wait ``--read-ms`` (the user reads the ghost text), accept
  it (an incremental ``didChange`` inserting it), request at the new cursor; ``--chain`` times.
  Median wall time of the requests after an acceptance, on ÷ off, and how many of them the
  speculative cache answered.

Server processes get ``OMP_NUM_THREADS=1`` by default (as bench/lsp_bench.py): two
multi-threaded torch processes on a small machine make timings meaningless.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lsp_server.testing import CompletionClient  # noqa: E402
from lsp_server.text import units  # noqa: E402

FILES = [
    "lsp_server/completion_service.py",
    "lsp_server/model_host.py",
    "lsp_server/settings.py",
    "lsp_server/typed_through.py",
    "lsp_server/worker.py",
    "lsp_server/metrics.py",
    "lsp_server/features/completion.py",
    "model_runtime/engine.py",
    "model_runtime/prompt.py",
    "model_runtime/stops.py",
]


def cursor_in(text: str, chars: int) -> tuple[int, int]:
    """End of the first code line starting at or after character ``chars`` (line, UTF-16 col)."""
    lines = text.split("\n")
    start = text.count("\n", 0, min(chars, len(text)))
    for i in range(start, len(lines)):
        stripped = lines[i].strip()
        if len(stripped) > 8 and not stripped.startswith(("#", '"', "'", "@")):
            return i, utf16_len(lines[i])
    return len(lines) - 1, utf16_len(lines[-1])


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (what LSP positions count by default)."""
    return units(text, "utf-16")


def advance(line: int, character: int, inserted: str) -> tuple[int, int]:
    """The cursor after inserting ``inserted`` at (line, character)."""
    parts = inserted.split("\n")
    if len(parts) == 1:
        return line, character + utf16_len(inserted)
    return line + len(parts) - 1, utf16_len(parts[-1])


def insert(
    client: CompletionClient, uri: str, version: int, line: int, char: int, text: str
) -> None:
    here = types.Position(line=line, character=char)
    client.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=here, end=here), text=text
                )
            ],
        )
    )


async def first_completion(
    client: CompletionClient,
    other: CompletionClient,
    k: int,
    path: str,
    dwell: float,
    cursor_chars: int,
) -> tuple[float, int, int]:
    text = (ROOT / path).read_text(encoding="utf-8")
    await other.wait_idle()
    await client.wait_idle()
    uri = await client.open(ROOT / f"bench_open_{k}_{Path(path).name}", text)
    await asyncio.sleep(dwell)
    line, character = cursor_in(text, cursor_chars)
    started = time.perf_counter()
    await client.inline_completion(uri, line, character)
    elapsed = time.perf_counter() - started
    stats = (await client.status())["completions"]
    return elapsed, stats["lastReusedTokens"], stats["lastPromptTokens"]


async def tab_chain(
    client: CompletionClient,
    other: CompletionClient,
    k: int,
    path: str,
    steps: int,
    read_s: float,
) -> tuple[list[float], int]:
    """Latencies of the requests after each acceptance, and how many the cache answered."""
    text = (ROOT / path).read_text(encoding="utf-8")
    await other.wait_idle()
    uri = await client.open(ROOT / f"bench_chain_{k}_{Path(path).name}", text)
    await client.wait_idle()
    line, character = cursor_in(text, len(text) // 2)
    shown = await client.inline_completion(uri, line, character)
    latencies: list[float] = []
    before = (await client.status())["completions"]["cacheHits"]
    version = 1
    for _ in range(steps):
        if not shown:
            break
        await asyncio.sleep(read_s)
        version += 1
        insert(client, uri, version, line, character, shown)
        line, character = advance(line, character, shown)
        started = time.perf_counter()
        shown = await client.inline_completion(uri, line, character)
        latencies.append(time.perf_counter() - started)
    after = (await client.status())["completions"]["cacheHits"]
    return latencies, after - before


def build_tiny(out: Path) -> Path:
    """A tiny random model steered to always suggest (smoke runs only: figures mean nothing)."""
    from model_runtime.tiny import (
        END_OF_TEXT,
        STARCODER_FIM,
        build_tiny_llama,
        train_bpe_tokenizer,
    )

    corpus = [(ROOT / p).read_text(encoding="utf-8") for p in FILES[:3]]
    tokenizer = train_bpe_tokenizer(
        corpus, specials=[END_OF_TEXT, "<pad>", *STARCODER_FIM], pad="<pad>"
    )
    return build_tiny_llama(out, tokenizer=tokenizer, max_positions=8192, endless=("self", "x"))


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else float("nan")


async def run(args: argparse.Namespace) -> None:
    options: dict[str, Any] = {
        "debounceMs": 0,
        "maxNewTokens": args.max_new_tokens,
        "contextTokens": args.context_tokens,
    }
    if args.model:
        options["model"] = args.model
    for item in args.set:
        key, _, value = item.partition("=")
        options[key] = json.loads(value)
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    on = CompletionClient(init_options={**options, "prefetch": True}, root=ROOT, env=env)
    off = CompletionClient(init_options={**options, "prefetch": False}, root=ROOT, env=env)
    async with on, off:
        model = (await on.wait_ready(args.timeout))["model"]
        await off.wait_ready(args.timeout)
        print(f"# {model.get('model')} {model.get('dtype')} on {model.get('device')}; {options}")
        files = (FILES * ((args.samples // len(FILES)) + 1))[: args.samples]

        print(
            f"## first completion after didOpen (dwell {args.dwell:.1f} s, cursor after"
            f" {args.open_cursor_chars} chars)"
        )
        firsts: dict[str, list[float]] = {"on": [], "off": []}
        reused: dict[str, list[int]] = {"on": [], "off": []}
        for k, path in enumerate(files):
            for name, client, other in (("on", on, off), ("off", off, on)):
                elapsed, tokens, prompt = await first_completion(
                    client, other, k, path, args.dwell, args.open_cursor_chars
                )
                firsts[name].append(elapsed)
                reused[name].append(tokens)
                print(
                    f"  {k:2d} {path:40s} prefetch {name:3s} {elapsed * 1000:8.1f} ms"
                    f"  reused {tokens:5d}/{prompt} tokens",
                    flush=True,
                )

        print(f"## Tab chain ({args.chain} acceptances, read {args.read_ms} ms each)")
        chains: dict[str, list[float]] = {"on": [], "off": []}
        answered = {"on": 0, "off": 0}
        for k, path in enumerate(files):
            for name, client, other in (("on", on, off), ("off", off, on)):
                latencies, hits = await tab_chain(
                    client, other, k, path, args.chain, args.read_ms / 1000
                )
                chains[name].extend(latencies)
                answered[name] += hits
                shown = " ".join(f"{x * 1000:.0f}" for x in latencies)
                print(f"  {k:2d} {path:40s} prefetch {name:3s} [{shown}] ms, cache {hits}")
        prefetch = (await on.status())["completions"]["prefetch"]

    on_first, off_first = median_ms(firsts["on"]), median_ms(firsts["off"])
    on_chain, off_chain = median_ms(chains["on"]), median_ms(chains["off"])
    print()
    print("| measure | prefetch on | prefetch off | on ÷ off |")
    print("|---|---|---|---|")
    print(
        f"| first completion after didOpen, median | {on_first:.0f} ms | {off_first:.0f} ms"
        f" | {on_first / off_first:.2f} |"
    )
    print(
        f"| reused prompt tokens, median | {statistics.median(reused['on']):.0f}"
        f" | {statistics.median(reused['off']):.0f} | |"
    )
    print(
        f"| request after Tab, median | {on_chain:.0f} ms | {off_chain:.0f} ms"
        f" | {on_chain / off_chain:.2f} |"
    )
    print(
        f"| requests after Tab answered by the cache | {answered['on']}/{len(chains['on'])}"
        f" | {answered['off']}/{len(chains['off'])} | |"
    )
    print(f"\nprefetch counters (on): {prefetch}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="codellama.model (default: the server's default)")
    parser.add_argument("--tiny", action="store_true", help="smoke run on a tiny random model")
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--chain", type=int, default=3, help="acceptances per Tab chain")
    parser.add_argument("--dwell", type=float, default=2.0, help="seconds between open and ask")
    parser.add_argument("--read-ms", type=int, default=800, help="ms a suggestion is read")
    parser.add_argument(
        "--open-cursor-chars",
        type=int,
        default=1500,
        help="after didOpen, ask at the first code line after this many characters (the "
        "server cannot know the cursor on open: it prefills the file's first prompt window)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--context-tokens", type=int, default=1536)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="another server setting for both servers, e.g. --set repoContext=false",
    )
    args = parser.parse_args()
    if args.tiny:
        with tempfile.TemporaryDirectory() as tmp:
            args.model = str(build_tiny(Path(tmp) / "model"))
            asyncio.run(run(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
