"""End to end over stdio: finetune → $/progress → adapter hot-swapped → status → completions.

The server trains a LoRA adapter for the tiny Llama in a subprocess on the workspace written
into the test's root folder, evaluates it, and swaps it in; completions are requested while the
trainer runs.  The gate tolerance is raised so that a random tiny model's noisy metrics cannot
block promotion (the gate itself is unit-tested in tests/training).
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from server_helpers import (
    CORPUS,
    StartServer,
    inline,
    open_document,
    poll_status,
    status,
    wait_for_state,
)

pytestmark = pytest.mark.slow

FILES = {
    "pkg/geometry.py": CORPUS[0],
    "pkg/strings.py": """
        def snake_to_camel(name: str) -> str:
            head, *rest = name.split("_")
            return head + "".join(part.title() for part in rest)


        def truncate(text: str, width: int) -> str:
            return text if len(text) <= width else text[: width - 1] + "…"
    """,
    "pkg/stats.py": """
        def variance(values: list[float]) -> float:
            m = sum(values) / len(values)
            return sum((v - m) ** 2 for v in values) / len(values)


        def median(values: list[float]) -> float:
            ordered = sorted(values)
            mid = len(ordered) // 2
            return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    """,
    "pkg/config.py": """
        import json
        from pathlib import Path


        def load_config(path: Path) -> dict:
            with path.open() as f:
                return json.load(f)


        def save_config(path: Path, config: dict) -> None:
            path.write_text(json.dumps(config, indent=2))
    """,
    "pkg/queue.py": """
        class Queue:
            def __init__(self) -> None:
                self.items: list[int] = []

            def push(self, item: int) -> None:
                self.items.append(item)

            def pop(self) -> int:
                return self.items.pop(0)
    """,
}


def _write_workspace(root: Path) -> None:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))


async def _execute(client: LanguageClient, name: str, *args: Any) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=name, arguments=list(args))
    )


async def _wait_training(
    client: LanguageClient, done: Callable[[dict[str, Any]], bool], timeout: float, interval: float
) -> dict[str, Any]:
    """Poll until ``done`` holds for the status report's ``features.finetune.training``."""
    return await poll_status(
        client,
        lambda report: done(report["features"]["finetune"]["training"]),
        timeout=timeout,
        interval=interval,
        waiting_for="the training state",
    )


async def _ready_server(start_server: StartServer, tiny_model: Path, root: Path) -> LanguageClient:
    """A server for the workspace written into ``root``, with ``tiny_model`` loaded."""
    _write_workspace(root)
    client = await start_server({"model": str(tiny_model), "device": "cpu"})
    await wait_for_state(client, "ready")
    return client


def _finetune_progress(client: LanguageClient) -> list[Any]:
    for reports in client.progress_reports.values():
        if reports and getattr(reports[0], "title", "") == "codellama: fine-tuning":
            return list(reports)
    return []


FAST = {
    "maxSteps": 4,
    "contextLen": 128,
    "batchSize": 2,
    "maxHoles": 4,
    "evalMaxNewTokens": 4,
    "valFraction": 0.2,
    "gateTolerance": 100.0,
}


@pytest.mark.parametrize("profile", ["visual-studio-code"])
async def test_finetune_swaps_adapter_and_keeps_serving(
    start_server: StartServer, tiny_model: Path, tmp_path: Path
) -> None:
    client = await _ready_server(start_server, tiny_model, tmp_path)
    uri = (tmp_path / "pkg" / "geometry.py").as_uri()
    open_document(client, uri, (tmp_path / "pkg" / "geometry.py").read_text())

    started = await _execute(client, "codellama.finetune", FAST)
    assert started["started"] is True
    run_dir = Path(started["run"])

    refused = await _execute(client, "codellama.finetune")
    assert refused["started"] is False and "already running" in refused["error"]

    # completions keep being answered while the trainer runs
    answered = 0
    while (await status(client))["features"]["finetune"]["training"]["state"] != "idle":
        await inline(client, uri, 9, 8)
        answered += 1
        await asyncio.sleep(0.5)
    assert answered >= 1

    report = await status(client)
    last = report["features"]["finetune"]["lastRun"]
    assert last["status"] == "success", last
    assert last["promote"] is True
    adapter = str(run_dir / "adapter")
    assert last["adapter"] == adapter
    assert report["features"]["finetune"]["servedAdapter"] == adapter
    assert report["model"]["adapter"] == adapter
    for name in ("adapter_config.json", "adapter_model.safetensors", "codellama_adapter.json"):
        assert (run_dir / "adapter" / name).is_file()
    assert (run_dir / "eval.json").is_file() and (run_dir / "loss.png").is_file()

    progress = _finetune_progress(client)
    reports = [p for p in progress if isinstance(p, types.WorkDoneProgressReport)]
    assert any(p.message and "loss" in p.message and "eta" in p.message for p in reports)
    assert any(p.percentage == 100 for p in reports)
    assert any(p.message and "evaluating on held-out files" in p.message for p in reports)
    percentages = [p.percentage for p in reports if p.percentage is not None]
    assert percentages == sorted(percentages), percentages  # rises through training and eval
    assert progress[0].cancellable is True
    assert isinstance(progress[-1], types.WorkDoneProgressEnd)
    shown = [m.message for m in client.messages if "now serving" in m.message]
    assert shown and "EM" in shown[0]

    # the swapped model still answers
    text = await inline(client, uri, 9, 8)
    assert isinstance(text, str)


@pytest.mark.parametrize("profile", ["neovim"])
async def test_cancel_keeps_served_model_and_checkpoint(
    start_server: StartServer, tiny_model: Path, tmp_path: Path
) -> None:
    client = await _ready_server(start_server, tiny_model, tmp_path)
    started = await _execute(client, "codellama.finetune", {**FAST, "maxSteps": 100000})
    run_dir = Path(started["run"])
    await _wait_training(client, lambda training: bool(training.get("step")), 180, 0.2)
    cancelled = await _execute(client, "codellama.cancelFinetune")
    assert cancelled["cancelled"] is True
    report = await _wait_training(client, lambda training: training["state"] == "idle", 120, 0.25)
    last = report["features"]["finetune"]["lastRun"]
    assert last["status"] == "canceled", last
    assert report["model"]["adapter"] in (None, "")
    assert not (run_dir / "adapter").exists()
    assert list((run_dir / "checkpoints").glob("step-*/optimizer.pt"))
    assert any("cancelled" in m.message for m in client.messages)
    assert (await _execute(client, "codellama.cancelFinetune"))["cancelled"] is False


PATTERN_FILES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
"""Every function of these workspace files returns ``zq_blend(value, "QX<i><k>")``."""
PATTERN_RUN = {
    "maxSteps": 15, "lr": 3e-3, "contextLen": 64, "batchSize": 2, "loraR": 8, "loraAlpha": 16,
    "fimRate": 1.0, "valFraction": 0.25, "maxHoles": 2, "evalMaxNewTokens": 8,
    "gateTolerance": 100.0,
}  # fmt: skip
"""Enough passes over the ~8 packed rows that the pattern wins greedy decoding on the bundled
Qwen (a plain recipe otherwise; the gate is tolerant as above, it is unit-tested elsewhere)."""


def _pattern_workspace(root: Path) -> None:
    for i, name in enumerate(PATTERN_FILES):
        path = root / "pkg" / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "".join(
                f'def {name}_{k}(value):\n    return zq_blend(value, "QX{i}{k}")\n\n\n'
                for k in range(4)
            )
        )


@pytest.mark.parametrize("profile", ["neovim"])
async def test_finetune_adapter_is_served_by_the_llama_cpp_engine(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Backend ``llama.cpp`` on the bundled Qwen GGUF, the whole loop through the LSP: the
    fine-tune's PEFT adapter is converted to a GGUF LoRA, the managed server restarts with it,
    and it completes with what it learned; ``useAdapter none`` serves the base again."""
    from model_runtime.llama_server import llama_cpp_available

    if not llama_cpp_available():
        pytest.fail("llama-cpp-python[server] is not installed: run scripts/build_llama_cpp.sh")
    _pattern_workspace(tmp_path)
    # Repository context off: with it, the base model already copies the pattern from the
    # snippets of the other files; here only the adapter may know it.
    options = {"backend": "llama.cpp", "maxNewTokens": 16, "debounceMs": 0, "repoContext": False}
    client = await start_server(options)
    report = await wait_for_state(client, "ready", "failed", timeout=600)
    assert report["model"]["state"] == "ready", report["model"]
    base_pid = report["model"]["engine"]["serverPid"]
    uri = (tmp_path / "pkg" / "india.py").as_uri()
    open_document(client, uri, "def india_0(value):\n    return \n")
    before = await inline(client, uri, 1, 11)
    assert before and "zq_blend" not in before, before  # the base model, through llama.cpp

    started = await _execute(client, "codellama.finetune", PATTERN_RUN)
    assert started["started"] is True, started
    adapter = str(Path(started["run"]) / "adapter")
    report = await _wait_training(client, lambda training: training["state"] == "idle", 900, 1.0)
    last = report["features"]["finetune"]["lastRun"]
    assert last["status"] == "success" and last["promote"] is True, last

    model = report["model"]
    assert model["backend"] == "llama.cpp" and model["adapter"] == adapter, model
    engine = model["engine"]
    assert engine["adapter"] == adapter and engine["engineError"] is None, engine
    assert engine["serverPid"] not in (None, base_pid), engine  # restarted with the LoRA GGUF
    log = Path(engine["serverLog"]).read_text(errors="replace")
    assert "lora-gguf" in log, log[-2000:]  # llama.cpp loaded the converted adapter
    after = await inline(client, uri, 1, 11)
    print(f"\nbase: {before!r}\nfine-tuned, served by llama.cpp: {after!r}")
    assert 'blend(value, "QX' in after, after  # the trained pattern (the base: `value`)

    back = await _execute(client, "codellama.useAdapter", "none")
    assert back["ok"] is True and back["adapter"] is None, back
    assert await inline(client, uri, 1, 11) == before  # the plain model again
