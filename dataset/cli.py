"""``codellama-dataset``: build, watch and inspect the workspace dataset.

codellama-dataset build [WORKSPACE] [--out DIR] [--history] [--repo URL]
codellama-dataset watch [WORKSPACE] [--out DIR]
codellama-dataset stats [WORKSPACE] [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from dataset import api
from dataset.config import DatasetConfig


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codellama-dataset",
        description="Build, watch and inspect the workspace dataset (see docs/dataset.md).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log skipped files")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("build", "build the dataset from scratch"),
        ("watch", "keep the dataset in sync until interrupted"),
        ("stats", "show what the dataset holds and what was dropped"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("workspace", nargs="?", default=".", help="workspace directory (default: .)")
        p.add_argument(
            "--out", metavar="DIR", help="write DIR/dataset.jsonl (default: WORKSPACE/.codellama)"
        )
        p.add_argument("--languages", help="comma-separated allow-list of languages")
        p.add_argument("--max-file-kb", type=int, help="drop files larger than this (default 512)")
        if name == "build":
            p.add_argument(
                "--history", action="store_true", help="add commit records from git history"
            )
            p.add_argument(
                "--repo", metavar="URL", help="clone URL into the state dir and build from it"
            )
            p.add_argument("--no-progress", action="store_true", help="no progress bar")
        if name == "stats":
            p.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _config(args: argparse.Namespace) -> DatasetConfig:
    kwargs: dict[str, Any] = {}
    if args.languages:
        kwargs["languages"] = frozenset(x.strip() for x in args.languages.split(",") if x.strip())
    if args.max_file_kb:
        kwargs["max_file_bytes"] = args.max_file_kb * 1024
    return DatasetConfig(**kwargs)


class FileProgressBar:
    """A tqdm progress bar on stderr fed by the API's ``progress`` callback (files read)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, done: int, total: int | None, message: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None and total:
            self.bar = tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True)
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str(message[-40:], refresh=False)
            self.bar.refresh()
        else:
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _summary(stats: dict[str, Any]) -> str:
    lines = [
        f"kept {stats['kept']} files ({stats['kept_bytes'] / 1e6:.2f} MB, ~{stats['token_estimate']:,} tokens), "
        f"{stats['redactions']} secrets redacted, {stats['commit_records']} commit records",
    ]
    if stats.get("dropped"):
        lines.append("dropped: " + ", ".join(f"{k} {v}" for k, v in stats["dropped"].items()))
    if stats.get("skipped"):
        lines.append("skipped: " + ", ".join(f"{k} {v}" for k, v in stats["skipped"].items()))
    if stats.get("languages"):
        langs = sorted(stats["languages"].items(), key=lambda kv: -kv[1]["bytes"])
        lines.append("languages: " + ", ".join(f"{k} {v['files']}" for k, v in langs[:12]))
    for reason, detail in stats.get("notes") or []:
        lines.append(f"note: {reason}: {detail}")
    return "\n".join(lines)


def _build(args: argparse.Namespace) -> int:
    bar = FileProgressBar(not args.no_progress and sys.stderr.isatty())
    try:
        result = api.build(
            args.workspace, out=args.out, history=args.history, config=_config(args),
            progress=bar, repo=args.repo,
        )  # fmt: skip
    finally:
        bar.close()
    mb = result.bytes_read / 1e6
    print(
        f"{result.dataset_path}: {result.files_listed} files listed ({result.mode}), "
        f"{mb:.2f} MB read in {result.duration_s:.2f} s ({mb / max(result.duration_s, 1e-9):.1f} MB/s)"
    )
    print(_summary(result.to_dict()))
    return 0


def _watch(args: argparse.Namespace) -> int:
    def on_change(event: api.ChangeEvent) -> None:
        stamp = time.strftime("%H:%M:%S")
        parts = []
        if event.changed:
            parts.append(
                "updated " + ", ".join(event.changed[:5]) + (" …" if len(event.changed) > 5 else "")
            )
        if event.removed:
            parts.append(
                "removed " + ", ".join(event.removed[:5]) + (" …" if len(event.removed) > 5 else "")
            )
        print(
            f"[{stamp}] gen {event.generation}: {'; '.join(parts)} ({event.latency_s * 1000:.0f} ms)",
            flush=True,
        )

    watcher = api.watch(args.workspace, out=args.out, config=_config(args), on_change=on_change)
    initial = watcher.start()
    print(
        f"watching {watcher.root} → {watcher.dataset_path} ({initial.kept} records; "
        f"reconciled {initial.files_read} changed files in {initial.duration_s:.2f} s). Ctrl+C stops.",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
    print("stopped; dataset exported", flush=True)
    return 0


def _stats(args: argparse.Namespace) -> int:
    data = api.stats(args.workspace, out=args.out)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(_summary(data))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return {"build": _build, "watch": _watch, "stats": _stats}[args.command](args)
    except (FileNotFoundError, NotADirectoryError, RuntimeError, ValueError) as exc:
        print(f"codellama-dataset: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
