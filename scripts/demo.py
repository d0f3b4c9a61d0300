"""The codellama-lsp demo: the whole loop on the bundled model, printing each stage's figures.

1. a fresh copy of ``examples/sample_workspace`` as a git repository (two commits of history);
2. the workspace dataset (``dataset.api.build`` with history): kept/dropped, redactions, speed;
3. the real language server over stdio: model load, then an inline completion in a new file;
4. ``codellama.finetune`` from the editor's side: LoRA training with progress, base-vs-adapter
   evaluation on held-out files, hot-swap;
5. the same completion again, now from the tuned model, and the server's status.

Run it with ``make demo`` (sets up ``.venv`` first). ``--max-steps``/``--max-minutes`` bound the
fine-tune; ``--keep`` leaves the workspace under ``runs/demo`` for a look afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "sample_workspace"
MODEL = "bundled:qwen2.5-coder-0.5b"
"""The bundled default CPU model (a real code model with native FIM tokens)."""

# The file the demo "types" in: a new module of the sample workspace, cursor at the end. The
# method to call is defined in another file (inventory/store.py): the model learns its name
# from the repository context (the outline of InventoryStore, the type of `store`). Without that
# context the bundled model guesses `log.get(sku)`.
NEW_FILE = "inventory/audit.py"
NEW_TEXT = '''"""Audit helpers: compare the event log with the stock levels."""

from __future__ import annotations

from inventory.money import Money
from inventory.store import InventoryStore


def shipped_value(store: InventoryStore, sku: str) -> Money:
    """The value of every unit of one SKU shipped so far."""
    units = store.log.total("shipped", sku)
    item = store.'''
RIGHT = "get_item(sku)"
"""The right completion (``InventoryStore.get_item(sku: str) -> Item``)."""


def banner(title: str) -> None:
    """Print a stage header."""
    print(f"\n=== {title}", flush=True)


def make_workspace(dest: Path) -> Path:
    """Copy the sample workspace to ``dest`` and give it a small git history."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns(".codellama", "__pycache__"))
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "demo",
        "GIT_AUTHOR_EMAIL": "demo@example.invalid",
        "GIT_COMMITTER_NAME": "demo",
        "GIT_COMMITTER_EMAIL": "demo@example.invalid",
    }

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=dest, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "inventory/money.py", "inventory/models.py", "README.md", ".gitignore")
    git("commit", "-q", "-m", "Money and the item models")
    git("add", "-A")
    git("commit", "-q", "-m", "Store, events, reports and settings")
    (dest / "debug.log").write_text("ignored by .gitignore\n", encoding="utf-8")
    return dest


def build_dataset(workspace: Path) -> None:
    """Stage 2: build the dataset with history and print what went in and what was kept out."""
    from dataset import api

    started = time.perf_counter()
    stats = api.build(workspace, history=True)
    elapsed = time.perf_counter() - started
    records = api.load_records(workspace)
    files = [r for r in records if r["source"] == "file"]
    commits = [r for r in records if r["source"] == "commit"]
    print(f"dataset: {api.dataset_path(workspace)}")
    print(
        f"  {len(files)} file records, {len(commits)} commit records, "
        f"{stats.kept_bytes / 1024:.1f} KiB kept, ~{stats.token_estimate} tokens, "
        f"{elapsed * 1000:.0f} ms"
    )
    print(f"  dropped by reason: {stats.dropped or {}}; skipped: {stats.skipped or {}}")
    print(f"  secrets redacted: {stats.redactions}")
    for record in files:
        if record["redactions"]:
            line = next(
                (ln for ln in record["content"].splitlines() if "TOKEN" in ln),
                record["content"].splitlines()[-1],
            )
            print(f"  e.g. {record['file_path']}: {line.strip()}")
    print(f"  files: {', '.join(sorted(r['file_path'] for r in files))}")


def fmt_metrics(report: dict[str, Any]) -> str:
    """One line of EM / ES / identifier match."""
    return (
        f"EM {report.get('exact_match', 0):5.1f}  ES {report.get('edit_similarity', 0):5.1f}  "
        f"ID {report.get('identifier_em', 0):5.1f}"
    )


async def serve_and_tune(
    workspace: Path, max_steps: int, max_minutes: float, max_holes: int
) -> int:
    """Stages 3–5 through the real server process over stdio."""
    from lsp_server.testing import CompletionClient

    options = {"model": MODEL, "debounceMs": 0, "maxNewTokens": 48}
    async with CompletionClient(init_options=options, root=workspace) as client:
        print(f"initialize answered in {client.initialize_seconds * 1000:.0f} ms")
        started = time.perf_counter()
        status = await client.wait_ready(timeout=900)
        model = status["model"]
        print(
            f"model {model.get('model')} ready on {model.get('device')} ({model.get('dtype')}) "
            f"after {time.perf_counter() - started:.1f} s"
        )
        (workspace / NEW_FILE).write_text(NEW_TEXT, encoding="utf-8")
        uri = await client.open(NEW_FILE, NEW_TEXT)
        lines = NEW_TEXT.split("\n")
        position = (len(lines) - 1, len(lines[-1]))
        before = await timed_completion(client, uri, position)
        print(f"repository context of the last prompt: {_snippet_sources(await client.status())}")

        banner("4. Fine-tune on this workspace (codellama.finetune)")
        result = await client.client.workspace_execute_command_async(
            _command(
                "codellama.finetune",
                {"maxSteps": max_steps, "maxMinutes": max_minutes, "maxHoles": max_holes},
            )
        )
        print(f"started: {json.dumps(result)}")
        final = await follow_finetune(client)
        last = final.get("lastRun") or {}
        for message in client.messages:
            if "fine-tune" in message.message:
                print(message.message)
        if last.get("status") != "success":
            print(f"fine-tune did not succeed: {last}", file=sys.stderr)
            return 1
        report = load_report(Path(str(last.get("run"))))
        if report:
            print(f"  base    {fmt_metrics(report['base'])}")
            print(
                f"  adapter {fmt_metrics(report['adapter'])}   ({report['holes']} held-out holes)"
            )
        print(f"served adapter: {final.get('servedAdapter')}")

        banner("5. The same completion from the tuned model")
        print("before fine-tune:")
        print(indent(before))
        after = await timed_completion(client, uri, position)
        print("after:" if after != before else "after (unchanged):")
        print(indent(after))
        status = await client.status()
        print(f"status: {json.dumps(_status_summary(status))}")
        if not last.get("promote"):
            print("the new adapter did not beat the served model, so it was not swapped in")
    return 0


def _command(name: str, argument: dict[str, Any]) -> Any:
    from lsprotocol import types

    return types.ExecuteCommandParams(command=name, arguments=[argument])


async def timed_completion(client: Any, uri: str, position: tuple[int, int]) -> str:
    """Request an inline completion at ``position`` and print it with its latency."""
    started = time.perf_counter()
    text: str = await client.inline_completion(uri, *position)
    print(
        f"inline completion at {NEW_FILE}:{position[0] + 1} in {(time.perf_counter() - started) * 1000:.0f} ms:"
    )
    print(indent(text or "(empty)"))
    verdict = "right" if text.strip().startswith(RIGHT) else f"not the expected {RIGHT}"
    print(f"  ({verdict}: InventoryStore.get_item is defined in inventory/store.py)")
    return text


async def follow_finetune(client: Any) -> dict[str, Any]:
    """Print the training progress as the server reports it, until the run is over."""
    last_line = ""
    while True:
        status = await client.status()
        section = status.get("features", {}).get("finetune", {})
        training = section.get("training", {})
        if training.get("state") in (None, "idle") and section.get("lastRun"):
            return dict(section)
        line = _progress_line(training)
        if line and line != last_line:
            print(f"  {line}", flush=True)
            last_line = line
        await asyncio.sleep(1.0)


def _progress_line(training: dict[str, Any]) -> str:
    state = training.get("state")
    if state == "training" and training.get("step"):
        eta = training.get("etaSeconds")
        return (
            f"step {training['step']}/{training['total']}  loss {training.get('loss', 0):.3f}"
            + (f"  eta {eta:.0f} s" if isinstance(eta, (int, float)) else "")
        )
    if state == "evaluating" and training.get("evalHoles"):
        done, total = training["evalHoles"]
        done -= done % max(1, total // 10)  # a line per tenth, not per hole
        return f"evaluating base and adapter: {done}/{total} held-out holes"
    return str(state or "")


def load_report(run_dir: Path) -> dict[str, Any] | None:
    """The evaluation report the training run wrote, reduced to the overall figures."""
    for name in ("eval_report.json", "eval.json", "report.json"):
        path = run_dir / name
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            return {
                "base": data.get("base", {}).get("all", data.get("base", {})),
                "adapter": data.get("adapter", {}).get("all", data.get("adapter", {})),
                "holes": data.get("holes", data.get("n_holes", "?")),
            }
    return None


def _status_summary(status: dict[str, Any]) -> dict[str, Any]:
    model = status.get("model", {})
    return {
        "model": model.get("model"),
        "adapter": model.get("adapter"),
        "device": model.get("device"),
        "latencyP50Ms": status.get("completions", {}).get("latencyP50Ms"),
        "tokensPerSecond": status.get("completions", {}).get("tokensPerSecond"),
    }


def _snippet_sources(status: dict[str, Any]) -> str:
    """Where the last prompt's repository-context snippets came from (``codellama.status``)."""
    context = status.get("features", {}).get("dataset", {}).get("repoContext", {})
    snippets = (context.get("lastPrompt") or {}).get("snippets") or []
    if not snippets:
        return "none"
    return ", ".join(
        f"{s['path']}:{s['lines']} ({s['reason']}{' ' + s['name'] if s.get('name') else ''})"
        for s in snippets
    )


def indent(text: str) -> str:
    """Indent a block for display."""
    return "\n".join(f"    | {line}" for line in text.split("\n"))


def main(argv: list[str] | None = None) -> int:
    """Run the demo."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-steps", type=int, default=60, help="fine-tune step budget")
    parser.add_argument("--max-minutes", type=float, default=5.0, help="fine-tune time budget")
    parser.add_argument("--max-holes", type=int, default=20, help="held-out evaluation holes")
    parser.add_argument("--workspace", type=Path, default=ROOT / "runs" / "demo" / "workspace")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    total = time.perf_counter()

    banner("1. Sample workspace")
    workspace = make_workspace(args.workspace.resolve())
    print(f"{workspace} (git repository, 2 commits)")

    banner("2. Workspace dataset")
    build_dataset(workspace)

    banner("3. Language server: load the bundled model, complete")
    code = asyncio.run(serve_and_tune(workspace, args.max_steps, args.max_minutes, args.max_holes))
    print(f"\ndemo finished in {time.perf_counter() - total:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
