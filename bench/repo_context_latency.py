"""Repository context's cost while typing: latency and KV reuse with ``repoContext`` on ÷ off.

    .venv/bin/python bench/repo_context_latency.py [--package click] [--sessions 6] \\
        [--keystrokes 8] [--context-tokens 1536] [--max-new-tokens 16]
    .venv/bin/python bench/repo_context_latency.py --sessions 1 --keystrokes 2 \\
        --context-tokens 256 --max-new-tokens 4                      # smoke run

Two real server processes over stdio on the same workspace (an installed third-party
package's source, default ``click``, with its dataset built), the default model, the same
settings except ``repoContext``. Each *session* opens one of the package's longest files with
one code line cut after its indentation, then types the line back one character per
keystroke (``didChange`` + ``textDocument/inlineCompletion``, awaited): the first request is at
a new position, the others are typing. Sessions alternate between the two servers (on, off,
on, off, ...) with both idle in between, so background load hits both alike.

Printed, per server and as on ÷ off (issue 10's goal: ≤ 1.2 at equal prompt size): the median
and p95 latency of the typing requests the model answered (keystrokes that match the shown
suggestion are answered by typed-through or the cache in milliseconds, on both sides; their
count is printed), the median at the new positions, the prompt tokens
(``lastPromptTokens``: the budget is filled on both sides, so the sizes are equal) and the KV
reuse rate while typing (``lastReusedTokens`` ÷ ``lastPromptTokens``: whether the context
block stays stable while the user types).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from lsp_server.testing import CompletionClient  # noqa: E402
from lsp_server.text import units  # noqa: E402

SIDES = ("on", "off")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--package", default="click")
    parser.add_argument("--sessions", type=int, default=6, help="sessions per server")
    parser.add_argument("--keystrokes", type=int, default=8, help="typed characters per session")
    parser.add_argument("--context-tokens", type=int, default=1536)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--model", default="", help="the model setting ('': the default)")
    return parser


def typing_sites(workspace: Path, count: int, keystrokes: int) -> list[tuple[Path, int, int]]:
    """(file, line, column) per session: a code line of the longest files, at 60 % of the file,
    long enough to type ``keystrokes`` characters after its indentation."""
    files = sorted(workspace.rglob("*.py"), key=lambda p: p.stat().st_size, reverse=True)
    sites = []
    for path in files:
        lines = path.read_text(encoding="utf-8").split("\n")
        for number in range(int(len(lines) * 0.6), len(lines)):
            stripped = lines[number].strip()
            indent = len(lines[number]) - len(lines[number].lstrip())
            if len(stripped) > keystrokes + 4 and not stripped.startswith(("#", '"', "'", "@")):
                sites.append((path, number, indent))
                break
        if len(sites) == count:
            break
    return sites


async def session(
    client: CompletionClient, site: tuple[Path, int, int], keystrokes: int, k: int
) -> list[dict[str, Any]]:
    """Type one line back at ``site``; one row per request (latency, prompt and reused tokens)."""
    path, number, indent = site
    lines = path.read_text(encoding="utf-8").split("\n")
    target = lines[number]
    lines[number] = target[:indent]
    copy = path.with_name(f"bench_typing_{k}_{path.name}")  # not in the dataset: no self-context
    uri = await client.open(copy, "\n".join(lines))
    rows = []
    answered = (await client.status())["completions"]["completions"]
    for typed in range(keystrokes):
        if typed:
            lines[number] = target[: indent + typed]
            client.change(uri, "\n".join(lines))
        started = time.perf_counter()
        await client.inline_completion(uri, number, units(lines[number], "utf-16"))
        seconds = time.perf_counter() - started
        completions = (await client.status())["completions"]
        model = completions["completions"] > answered  # not the cache or typed-through
        answered = completions["completions"]
        rows.append(
            {
                "seconds": seconds,
                "model": model,
                "prompt": completions.get("lastPromptTokens") or 0 if model else 0,
                "reused": completions.get("lastReusedTokens") or 0 if model else 0,
            }
        )
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Over the typing requests the model answered (the others came from the completion cache
    or typed-through, in milliseconds on both sides): latency median and p95, their count,
    KV reuse; the new positions' median; prompt tokens."""
    typed = [r for r in rows if not r["first"] and r["model"]]
    typing = sorted(r["seconds"] for r in typed)
    firsts = [r["seconds"] for r in rows if r["first"]]
    return {
        "median_ms": 1000 * statistics.median(typing),
        "p95_ms": 1000 * typing[min(len(typing) - 1, int(0.95 * len(typing)))],
        "model": len(typed),
        "typing": sum(not r["first"] for r in rows),
        "new_ms": 1000 * statistics.median(firsts),
        "prompt": statistics.median(r["prompt"] for r in rows if r["model"]),
        "reuse": sum(r["reused"] for r in typed) / max(1, sum(r["prompt"] for r in typed)),
    }


async def run(args: argparse.Namespace) -> None:
    from quality_holes import workspace_records

    tmp = Path(tempfile.mkdtemp(prefix="bench-repo-latency-"))
    workspace, records = workspace_records(args.package, tmp)
    sites = typing_sites(workspace, args.sessions, args.keystrokes)
    base = {
        "contextTokens": args.context_tokens, "maxNewTokens": args.max_new_tokens,
        "debounceMs": 0, **({"model": args.model} if args.model else {}),
    }  # fmt: skip
    clients = {
        side: CompletionClient(init_options={**base, "repoContext": side == "on"}, root=workspace)
        for side in SIDES
    }
    rows: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    try:
        for client in clients.values():
            await client.start()
        for side, client in clients.items():
            report = await client.wait_ready()
            print(f"{side}: {report['model'].get('model')} ({report['model'].get('dtype')})")
        index = None
        for _ in range(600):  # the "on" server's index: its watcher syncs the dataset first
            index = (await clients["on"].status())["features"]["dataset"]["repoContext"]
            if index.get("index"):
                break
            await asyncio.sleep(0.1)
        print(f"# {args.package}: {len(records)} records, index {index and index['index']}; "
              f"{len(sites)} sessions × {args.keystrokes} keystrokes per server, context "
              f"{args.context_tokens}, {args.max_new_tokens} new tokens; load "
              f"{os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        for k, site in enumerate(sites):
            for side, client in clients.items():
                for other in clients.values():
                    await other.wait_idle()
                done = await session(client, site, args.keystrokes, k)
                for i, row in enumerate(done):
                    row["first"] = i == 0
                rows[side] += done
    finally:
        for client in clients.values():
            await client.close()
    figures = {side: summary(rows[side]) for side in SIDES}
    print("\n| repoContext | typing median (model) | typing p95 (model) | keystrokes the model "
          "answered | new position median | prompt tokens | KV reuse while typing |\n"
          "|---|---|---|---|---|---|---|")  # fmt: skip
    for side in SIDES:
        f = figures[side]
        print(f"| {side} | {f['median_ms']:,.0f} ms | {f['p95_ms']:,.0f} ms | "
              f"{f['model']}/{f['typing']} | {f['new_ms']:,.0f} ms | {f['prompt']:.0f} | "
              f"{100 * f['reuse']:.1f} % |")  # fmt: skip
    on, off = figures["on"], figures["off"]
    print(f"| on ÷ off | {on['median_ms'] / off['median_ms']:.2f} | "
          f"{on['p95_ms'] / off['p95_ms']:.2f} | | {on['new_ms'] / off['new_ms']:.2f} | "
          f"{on['prompt'] / off['prompt']:.2f} | |")  # fmt: skip


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    asyncio.run(run(_parser().parse_args()))


if __name__ == "__main__":
    main()
