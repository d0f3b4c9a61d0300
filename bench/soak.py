"""Soak: ≥ 10k fuzzed messages through one real server process, RSS over time.

    .venv/bin/python bench/soak.py [--messages 20000] [--seed 1] [--profile neovim]
                                    [--model DIR]   # default: a tiny random Llama built here

The traffic is :mod:`lsp_server.fuzzing`'s seeded mix (edits with LSP-only line breaks,
completions, code actions, cancellations, bad params, invalid JSON-RPC, batches, framing
faults) with its checks: crashes, hangs, unanswered requests, documents diverged from the
reference model, pop-ups. Printed: those counts, messages/s, and the server's RSS sampled every
``--sample-every`` messages, with the ratio of the final RSS to the RSS after warm-up (the first
sample after the model served traffic) as the baseline measured in the same run — a server
that leaks per message drifts away from 1.0 as the run gets longer.

The traffic starts only once the model has loaded (``--no-wait`` starts at once): loading
imports torch and transformers and reads the weights (44 → ~410 MB for the tiny model, 14 s on
an idle 2-core machine), and a soak that ran during the load mistook that climb for a leak
(2026-12-02: "211 → 838 MB"; measured after the load: 418 → 422 MB over 12k messages).
"""

from __future__ import annotations

import argparse
import asyncio
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lsprotocol import converters  # noqa: E402
from pytest_lsp import client_capabilities  # noqa: E402

from lsp_server.fuzzing import FuzzReport, run_fuzz  # noqa: E402

CORPUS = [
    "def mean(values):\n    return sum(values) / len(values)\n\n\nclass Point:\n    pass\n"
] * 8


def tiny_model(out: Path) -> Path:
    """A 2-layer random Llama with a small BPE tokenizer (the test suite's tiny model)."""
    from model_runtime.tiny import (
        END_OF_TEXT,
        STARCODER_FIM,
        build_tiny_llama,
        train_bpe_tokenizer,
    )

    tokenizer = train_bpe_tokenizer(
        CORPUS, specials=[END_OF_TEXT, "<pad>", *STARCODER_FIM], pad="<pad>"
    )
    return build_tiny_llama(out, tokenizer=tokenizer, max_positions=8192)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", default="neovim", choices=["neovim", "visual-studio-code"])
    parser.add_argument("--model", help="model directory (default: a tiny random Llama)")
    parser.add_argument("--sample-every", type=int, default=1000)
    parser.add_argument("--server-log", help="keep the server's stderr in this file")
    parser.add_argument(
        "--no-wait", action="store_true", help="send traffic while the model is still loading"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="codellama-soak-") as tmp:
        work = Path(tmp)
        model = args.model or str(tiny_model(work / "model"))
        root = work / "ws"
        root.mkdir()
        capabilities: Any = converters.get_converter().unstructure(
            client_capabilities(args.profile)
        )

        def progress(report: FuzzReport, sent: int) -> None:
            rss = report.rss_kb[-1][1] / 1024
            print(f"  {sent:>7} messages  RSS {rss:7.1f} MB", flush=True)

        report = asyncio.run(
            run_fuzz(
                seed=args.seed,
                messages=args.messages,
                profile=args.profile,
                capabilities=capabilities,
                configuration={
                    "model": model,
                    "debounceMs": 0,
                    "maxNewTokens": 8,
                    "watchDataset": False,
                    "logLevel": "warning",
                },
                root=root,
                probe_every=args.sample_every,
                stderr_path=Path(args.server_log) if args.server_log else work / "server.log",
                on_probe=progress,
                ready_timeout=0.0 if args.no_wait else 600.0,
            )
        )
    samples = [kb / 1024 for _, kb in report.rss_kb]
    loaded = 0.0 if args.no_wait else samples[1]
    first = 1 if args.no_wait else 2  # index of the first sample taken during the traffic
    warm = samples[first] if len(samples) > first + 1 else samples[first - 1]
    print(report.summary())
    print(
        f"messages {report.messages}, {report.messages / report.seconds:.0f} msg/s; "
        f"crashes {report.crashes}, hangs {report.hangs}, unanswered {len(report.unanswered)}, "
        f"diverged {len(report.diverged)}, pop-ups {len(report.popups)}"
    )
    print(
        f"RSS start {samples[0]:.0f} MB, "
        + (f"model loaded {loaded:.0f} MB, " if loaded else "")
        + f"after warm-up {warm:.0f} MB, end {samples[-1]:.0f} MB; "
        f"end / warm-up = {samples[-1] / warm:.3f}"
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
