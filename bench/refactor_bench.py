"""Refactor code action benchmark on the bundled model (SmolLM2-135M-Instruct, CPU).

Figures, all measured in the same run:

1. **Listing latency** (``textDocument/codeAction``, client round trip through the real server
   over stdio), idle and while a refactor is generating; baseline: the round trip of a no-model
   request (``codellama.status``). Budget: 10 ms.
2. **Resolve latency** of "Add docstring" (``codeAction/resolve``: generate, validate, build the
   edit) per sample function, and whether a valid edit came back.
3. **Constrained vs rewrite** (in-process, same model, same functions): our docstring strategy
   (the model writes only the sentence; we insert it) vs the baseline of asking the model to
   rewrite the whole function with a docstring. Latency, and how often the result is a valid edit
   that adds a docstring and leaves the code unchanged.

    .venv/bin/python bench/refactor_bench.py [--listings 30] [--functions 4]
        [--out bench/results/refactor.md]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL = "bundled:smollm2-135m"
URI = "file:///bench/geometry.py"
SAMPLE = """\
import math


def area(width, height):
    if width < 0 or height < 0:
        raise ValueError("negative size")
    return width * height


def distance(p, q):
    dx = p[0] - q[0]
    dy = p[1] - q[1]
    return math.sqrt(dx * dx + dy * dy)


def mean(values):
    if not values:
        return 0.0
    return sum(values) / len(values)


def slugify(title):
    words = title.lower().split()
    return "-".join(w.strip(".,!?") for w in words if w)
"""
FUNCTIONS = {"area": 4, "distance": 10, "mean": 16, "slugify": 22}  # a line inside each


@dataclass
class Trial:
    name: str
    seconds: float
    valid: bool
    docstring: str


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _docstring_only_added(old: str, new: str, name: str) -> str:
    """The docstring added to ``name`` if that is the only change, else ''."""
    try:
        new_tree = ast.parse(new)
    except SyntaxError:
        return ""
    old_funcs = {n.name: n for n in ast.parse(old).body if isinstance(n, ast.FunctionDef)}
    for node in new_tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        docstring = ast.get_docstring(node)
        body = node.body[1:] if node.name == name and docstring else node.body
        original = old_funcs.get(node.name)
        if original is None or ast.dump(ast.Module(body, [])) != ast.dump(
            ast.Module(original.body, [])
        ):
            return ""
        if node.name == name and not docstring:
            return ""
    target = next(n for n in new_tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    return ast.get_docstring(target) or ""


class _Session:
    """The benchmark's LSP client and the requests the server figures time."""

    def __init__(self, client: Any) -> None:
        from lsprotocol import types

        self.client = client
        self.types = types

    async def status(self) -> dict[str, Any]:
        types = self.types
        return dict(
            await self.client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="codellama.status", arguments=[])
            )
            or {}
        )

    async def listing(self, line: int) -> list[Any]:
        types = self.types
        cursor = types.Position(line=line, character=4)
        result = await self.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=URI),
                range=types.Range(start=cursor, end=cursor),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        return list(result or [])

    @staticmethod
    async def timed(fn: Any, n: int) -> list[float]:
        out = []
        for _ in range(n):
            began = time.perf_counter()
            await fn()
            out.append(time.perf_counter() - began)
        return out


async def _start_server() -> Any:
    """A pytest-lsp client of ``python -m lsp_server`` serving :data:`MODEL`, initialized."""
    from lsprotocol import types
    from pytest_lsp import client_capabilities, make_test_lsp_client

    client = make_test_lsp_client()
    client.set_configuration({"model": MODEL}, section="codellama")
    await client.start_io(sys.executable, "-m", "lsp_server", env=dict(os.environ))
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=ROOT.as_uri(),
            initialization_options={"model": MODEL},
        )
    )
    return client


async def _docstring_trials(session: _Session, listings: int) -> tuple[list[Trial], list[float]]:
    """Resolve "Add docstring" on every sample function; the first time, also time listings
    while the model is busy generating. Returns the trials and the busy listing times."""
    from lsp_server.refactor.edits import apply_text_edits

    types = session.types
    trials = []
    busy_times: list[float] = []
    for name, line in FUNCTIONS.items():
        action = next(a for a in await session.listing(line) if a.title.startswith("Add docstring"))
        began = time.perf_counter()
        pending = asyncio.ensure_future(session.client.code_action_resolve_async(action))
        if not busy_times:  # listing while the model is busy generating
            await asyncio.sleep(0.3)
            busy_times = await session.timed(lambda: session.listing(10), listings)
        resolved = await pending
        seconds = time.perf_counter() - began
        edit = resolved.edit
        docstring = ""
        if edit is not None and edit.document_changes:
            change = edit.document_changes[0]
            assert isinstance(change, types.TextDocumentEdit)
            edits: list[Any] = list(change.edits)
            new = apply_text_edits(SAMPLE, edits)
            docstring = _docstring_only_added(SAMPLE, new, name)
        trials.append(Trial(name, seconds, edit is not None, docstring))
    return trials, busy_times


async def server_figures(listings: int) -> dict[str, Any]:
    client = await _start_server()
    session = _Session(client)
    types = session.types
    try:
        began = time.perf_counter()
        while (await session.status())["model"]["state"] != "ready":
            await asyncio.sleep(0.2)
        load_s = time.perf_counter() - began
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=URI, language_id="python", version=1, text=SAMPLE
                )
            )
        )
        await session.listing(4)
        status_times = await session.timed(session.status, listings)
        listing_times = await session.timed(lambda: session.listing(4), listings)
        trials, busy_times = await _docstring_trials(session, listings)
    finally:
        try:
            await asyncio.wait_for(client.shutdown_session(), 20)
        finally:
            await client.stop()
    return {
        "load_s": load_s,
        "status": status_times,
        "listing": listing_times,
        "listing_busy": busy_times,
        "trials": trials,
    }


def inprocess_figures() -> dict[str, list[Trial]]:
    from lsp_server.refactor.actions import Strategy, action_by_kind
    from lsp_server.refactor.generate import generate_answer
    from lsp_server.refactor.region import Selection, select_region
    from lsp_server.refactor.service import RefactorRequest, run_refactor
    from model_runtime.loader import load_model

    loaded = load_model(MODEL)
    action = action_by_kind("docstring")
    results: dict[str, list[Trial]] = {"constrained": [], "rewrite": []}
    for name, line in FUNCTIONS.items():
        region = select_region(SAMPLE, Selection(line, 4, line, 4), "python")
        for label, strategy in (("constrained", None), ("rewrite", Strategy.REWRITE)):
            request = RefactorRequest(SAMPLE, "python", region, action)
            began = time.perf_counter()
            outcome = run_refactor(
                request,
                lambda prompt: generate_answer(loaded.model, loaded.tokenizer, prompt),
                strategy=strategy,
            )
            seconds = time.perf_counter() - began
            docstring = _docstring_only_added(SAMPLE, outcome.new_source or SAMPLE, name)
            results[label].append(Trial(name, seconds, outcome.ok, docstring))
    return results


def report(server: dict[str, Any], local: dict[str, list[Trial]], args: argparse.Namespace) -> str:
    ms = lambda v: f"{1000 * v:.1f} ms"  # noqa: E731
    status_med = statistics.median(server["status"])
    list_med = statistics.median(server["listing"])
    busy_med = statistics.median(server["listing_busy"])
    trials: list[Trial] = server["trials"]
    lines = [
        "## Refactor code actions (bench/refactor_bench.py)",
        "",
        f"Command: `.venv/bin/python bench/refactor_bench.py --listings {args.listings}`; "
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; model {MODEL} on CPU; "
        f"load average at start {args.load:.1f} on 2 cores (other helpers running).",
        "",
        "| Listing (`textDocument/codeAction`, round trip) | median | p95 | ratio to baseline |",
        "|---|---|---|---|",
        f"| baseline: `codellama.status` round trip | {ms(status_med)} | {ms(_percentile(server['status'], 0.95))} | 1.00 |",
        f"| listing, model idle | {ms(list_med)} | {ms(_percentile(server['listing'], 0.95))} | {list_med / status_med:.2f} |",
        f"| listing while a refactor generates | {ms(busy_med)} | {ms(_percentile(server['listing_busy'], 0.95))} | {busy_med / status_med:.2f} |",
        "",
        f"Server model load (bundled, cached conversion): {server['load_s']:.1f} s.",
        "",
        '| Resolve "Add docstring" (server, end to end) | latency | valid edit | docstring added, code unchanged |',
        "|---|---|---|---|",
    ]
    for t in trials:
        lines.append(
            f"| `{t.name}` | {t.seconds:.1f} s | {'yes' if t.valid else 'no'} | {t.docstring or '—'} |"
        )
    med = statistics.median(t.seconds for t in trials)
    lines += [
        f"| **median** | **{med:.1f} s** | {sum(t.valid for t in trials)}/{len(trials)} | |",
        "",
    ]
    if not local:
        return "\n".join(lines)
    lines += [
        "| In-process, same model | median latency | valid edits | docstring added, code unchanged |",
        "|---|---|---|---|",
    ]
    base = statistics.median(t.seconds for t in local["rewrite"])
    for label in ("rewrite", "constrained"):
        rows = local[label]
        m = statistics.median(t.seconds for t in rows)
        title = (
            "baseline: model rewrites the function"
            if label == "rewrite"
            else "ours: model writes the sentence only"
        )
        lines.append(
            f"| {title} (ratio {m / base:.2f}) | {m:.1f} s | {sum(t.valid for t in rows)}/{len(rows)} | "
            f"{sum(bool(t.docstring) for t in rows)}/{len(rows)} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=30, help="listing requests per figure")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "refactor.md")
    parser.add_argument("--skip-inprocess", action="store_true", help="server figures only")
    parser.add_argument(
        "--functions",
        type=int,
        default=len(FUNCTIONS),
        help=f"sample functions to refactor, 1-{len(FUNCTIONS)} (a smaller number: a quick run)",
    )
    args = parser.parse_args()
    if not 1 <= args.functions <= len(FUNCTIONS):
        parser.error(f"--functions must be between 1 and {len(FUNCTIONS)}")
    for name in list(FUNCTIONS)[args.functions :]:  # both figures read the same table
        del FUNCTIONS[name]
    args.load = os.getloadavg()[0]
    server = asyncio.run(server_figures(args.listings))
    local = {} if args.skip_inprocess else inprocess_figures()
    text = report(server, local, args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
