"""Repository-context retrieval: index build time and memory, retrieval p50/p95, edit cost.

    python bench/retrieval_bench.py                       # 10k-file generated tree + a real tree
    python bench/retrieval_bench.py --files 500 --queries 50 --real none   # smoke run

Trees: the generated workspace of ``bench/dataset_common.py`` (``--files``) and a real one
(``--real``: default an installed third-party package's source, ``transformers``). Records are
the trees' Python files read as the dataset would hold them (``--via-dataset`` builds the real
dataset first, with its filters and secret redaction).

Baselines measured in the same run, when the libraries are importable (they are not project
dependencies: ``pip install --target DIR --no-deps bm25s==0.3.16 rank-bm25==0.2.2`` and pass
``--libs DIR``): the cost of an edit with a static library index (``bm25s`` must re-index the
whole corpus) ÷ our incremental re-index of one file, and ``rank-bm25``'s query time ÷ ours.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_runtime.retrieval import (
    STRIDE_LINES,
    WINDOW_LINES,
    RepoIndex,
    identifiers,
)


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_tree(root: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The tree's Python files as file records."""
    records = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(part.startswith(".") or part == "__pycache__" for part in rel):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        records.append(
            {"file_path": path.relative_to(root).as_posix(), "content": text, "language": "python"}
        )
        if limit is not None and len(records) >= limit:
            break
    return records


def dataset_records(root: Path) -> list[dict[str, Any]]:
    """Build the workspace dataset of ``root`` (filters, secrets) and return its records."""
    import tempfile

    from dataset import api

    out = Path(tempfile.mkdtemp(prefix="retrieval-bench-"))
    api.build(root, out=out)
    return api.load_records(root, out=out)


def queries(records: list[dict[str, Any]], n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """Random cursors (path, prefix, suffix) at line starts inside the files."""
    rng = random.Random(seed)
    picked = []
    while len(picked) < n:
        rec = rng.choice(records)
        text = rec["content"]
        if len(text) < 200:
            continue
        cut = text.find("\n", rng.randint(len(text) // 4, len(text) - 1))
        cut = len(text) if cut < 0 else cut + 1
        picked.append((rec["file_path"], text[:cut], text[cut:]))
    return picked


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def measure(name: str, records: list[dict[str, Any]], n_queries: int) -> dict[str, Any]:
    """Build, query and edit figures for one tree."""
    gc.collect()
    before = _rss_mb()
    index = RepoIndex(name=name)
    started = time.perf_counter()
    index.load(records)
    build_s = time.perf_counter() - started
    gc.collect()
    memory = _rss_mb() - before
    cursors = queries(records, n_queries)
    index.retrieve(*cursors[0])  # numpy import and first-call costs are not per request
    times = []
    for cursor in cursors:
        t = time.perf_counter()
        index.retrieve(*cursor)
        times.append((time.perf_counter() - t) * 1000)
    edits = []
    for path, prefix, suffix in cursors[:50]:
        t = time.perf_counter()
        index.set_file(path, prefix + "\ndef edited_here():\n    pass\n" + suffix, "python")
        edits.append((time.perf_counter() - t) * 1000)
    return {
        "tree": name,
        **index.stats(),
        "bytes": sum(len(r["content"]) for r in records),
        "build_s": round(build_s, 2),
        "index_rss_mb": round(memory, 1),
        "retrieve_p50_ms": round(statistics.median(times), 2),
        "retrieve_p95_ms": round(_percentile(times, 0.95), 2),
        "edit_p95_ms": round(_percentile(edits, 0.95), 2),
        "_cursors": cursors,
    }


def _windows(records: list[dict[str, Any]]) -> list[list[str]]:
    """The same windows our index scores, as token lists for the library baselines."""
    docs = []
    for rec in records:
        lines = rec["content"].split("\n")
        for start in range(0, max(1, len(lines) - STRIDE_LINES), STRIDE_LINES):
            docs.append(sorted(identifiers("\n".join(lines[start : start + WINDOW_LINES]))))
    return docs


def baselines(records: list[dict[str, Any]], cursors: list[tuple[str, str, str]]) -> dict[str, Any]:
    """bm25s full index time (= the cost of one edit) and rank-bm25 query time, if importable."""
    out: dict[str, Any] = {}
    docs = _windows(records)
    try:
        import bm25s

        t = time.perf_counter()
        retriever = bm25s.BM25()
        vocab: dict[str, int] = {}
        ids = [[vocab.setdefault(w, len(vocab)) for w in d] for d in docs]
        retriever.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)
        out["bm25s_index_s"] = round(time.perf_counter() - t, 2)
    except ImportError:
        out["bm25s_index_s"] = None
    try:
        from rank_bm25 import BM25Okapi

        bm25 = BM25Okapi(docs)
        times = []
        for _, prefix, _ in cursors[:5]:
            query = sorted(identifiers("\n".join(prefix.split("\n")[-12:])))
            t = time.perf_counter()
            bm25.get_scores(query)
            times.append((time.perf_counter() - t) * 1000)
        out["rank_bm25_query_p50_ms"] = round(statistics.median(times), 1)
    except ImportError:
        out["rank_bm25_query_p50_ms"] = None
    return out


def main(argv: list[str] | None = None) -> int:
    """Print one table row per tree, with the ratios to the library baselines."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--files", type=int, default=10_000, help="files of the generated tree")
    p.add_argument("--queries", type=int, default=300, help="cursors per tree")
    p.add_argument(
        "--real",
        default="transformers",
        help="an installed package whose source is the real tree, a directory, or 'none'",
    )
    p.add_argument("--via-dataset", action="store_true", help="records from a dataset build")
    p.add_argument("--libs", help="directory with bm25s / rank-bm25 for the baselines")
    p.add_argument("--no-baselines", action="store_true", help="skip the library baselines")
    args = p.parse_args(argv)
    if args.libs:
        sys.path.insert(0, args.libs)
    from dataset_common import generated_tree

    trees: list[tuple[str, Path]] = [(f"generated-{args.files}", generated_tree(args.files))]
    if args.real != "none":
        real = Path(args.real)
        if not real.is_dir():
            import importlib

            module = importlib.import_module(args.real)
            real = Path(module.__file__ or "").parent
        trees.append((real.name, real))
    print("| tree | files | chunks | MB of code | build s | index RSS MB | retrieve p50 / p95 ms "
          "| edit p95 ms | bm25s re-index s (÷ our edit) | rank-bm25 query ms (÷ our p50) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, root in trees:
        records = dataset_records(root) if args.via_dataset else read_tree(root)
        row = measure(name, records, args.queries)
        base = {} if args.no_baselines else baselines(records, row["_cursors"])
        rebuild = base.get("bm25s_index_s")
        rank = base.get("rank_bm25_query_p50_ms")
        rebuild_txt = (
            f"{rebuild} ({rebuild * 1000 / max(row['edit_p95_ms'], 1e-3):.0f}×)" if rebuild else "—"
        )
        rank_txt = f"{rank} ({rank / max(row['retrieve_p50_ms'], 1e-3):.0f}×)" if rank else "—"
        print(
            f"| {name} | {row['files']} | {row['chunks']} | {row['bytes'] / 1e6:.1f} "
            f"| {row['build_s']} | {row['index_rss_mb']} "
            f"| {row['retrieve_p50_ms']} / {row['retrieve_p95_ms']} | {row['edit_p95_ms']} "
            f"| {rebuild_txt} | {rank_txt} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
