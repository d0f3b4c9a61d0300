"""The subprocess wrapper the server uses: event stream, cancel escalation, option mapping."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from training.job import TRAIN_OPTIONS, JobOptionError, TrainingJob, option_flags, train_command

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from pathlib import Path
    run = Path(sys.argv[1])
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append("term") if sys.argv[2] != "stubborn" else None)
    if sys.argv[2] == "slow-start":  # like the trainer: clear a stale CANCEL while starting
        time.sleep(0.5)
        (run / "CANCEL").unlink(missing_ok=True)
    print("not json", flush=True)
    for step in range(1, 1000):
        if stop or (sys.argv[2] in ("polite", "slow-start") and (run / "CANCEL").exists()):
            print(json.dumps({"event": "done", "status": "canceled", "steps": step - 1}), flush=True)
            sys.exit(2)
        print(json.dumps({"event": "step", "step": step, "total": 999, "loss": 1.0}), flush=True)
        if sys.argv[2] == "finish" and step == 3:
            print(json.dumps({"event": "done", "status": "success", "steps": 3}), flush=True)
            sys.exit(0)
        time.sleep(0.05)
    """
)


def _job(tmp_path: Path, mode: str, events: list[dict[str, Any]]) -> TrainingJob:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    cmd = [sys.executable, str(script), str(tmp_path / "run"), mode]
    return TrainingJob(cmd, tmp_path / "run", on_event=events.append, nice=False).start()


def test_events_are_streamed_and_done_returned(tmp_path: Path) -> None:
    events: list[dict[str, Any]] = []
    done = _job(tmp_path, "finish", events).wait(timeout=30)
    assert done["status"] == "success"
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3]


@pytest.mark.parametrize(("mode", "grace"), [("polite", 10.0), ("sigterm", 0.3)])
def test_cancel_file_then_sigterm(tmp_path: Path, mode: str, grace: float) -> None:
    events: list[dict[str, Any]] = []
    job = _job(tmp_path, mode, events)
    while job.last_step is None:
        pass
    job.cancel(grace_s=grace)
    done = job.wait(timeout=30)
    assert done["status"] == "canceled" and job.returncode == 2


def test_cancel_before_the_child_listens_is_not_lost(tmp_path: Path) -> None:
    """A cancel asked for while the trainer starts up (and clears old CANCEL files) still
    stops it at its first step, politely: no signal is needed (the grace period is long)."""
    job = _job(tmp_path, "slow-start", [])
    job.cancel(grace_s=120)
    done = job.wait(timeout=30)
    assert done["status"] == "canceled" and done["steps"] <= 1 and job.returncode == 2


def test_stubborn_child_is_killed_and_reported(tmp_path: Path) -> None:
    job = _job(tmp_path, "stubborn", [])
    while job.last_step is None:
        pass
    job.cancel(grace_s=0.3)
    done = job.wait(timeout=30)
    assert done["status"] == "canceled" and "exited with code -9" in done["error"]


def test_option_mapping() -> None:
    flags = option_flags(
        {"maxSteps": 5, "maxMinutes": 1.5, "gateMetric": "edit_similarity"}, TRAIN_OPTIONS
    )
    assert flags == ["--max-steps", "5", "--max-minutes", "1.5", "--gate-metric", "edit_similarity"]
    with pytest.raises(JobOptionError, match="unknown option 'steps'"):
        option_flags({"steps": 1}, TRAIN_OPTIONS)
    with pytest.raises(JobOptionError, match="maxSteps"):
        option_flags({"maxSteps": "many"}, TRAIN_OPTIONS)
    cmd = train_command(
        workspace="/ws", base_model="m", output="/o", options={"evaluate": False, "maxSteps": 2}
    )
    assert cmd[1:3] == ["-m", "training.train"] and "--no-eval" in cmd and "--workspace" in cmd


def _real_trainer(
    tmp_path: Path, *extra: str, model: str = "unused"
) -> tuple[TrainingJob, dict[str, Any]]:
    """The real ``python -m training.train`` child, as the server starts it."""
    import os

    cmd = train_command(
        workspace=tmp_path / "ws", base_model=model, output=tmp_path / "run", options={}
    )
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    job = TrainingJob(cmd + list(extra), tmp_path / "run", env={**os.environ, **env}, nice=False)
    return job, job.start().wait(timeout=300)


def test_real_trainer_reports_a_user_error_in_its_done_event(tmp_path: Path) -> None:
    job, done = _real_trainer(tmp_path)
    assert (
        job.done_event is not None and done is job.done_event
    )  # emitted by the trainer, not synthesised from the exit code
    assert done["status"] == "failed" and job.returncode == 1
    assert "no dataset" in done["error"] and "exited with code" not in done["error"]
    assert done["message"].startswith("training failed: no dataset")


def test_real_trainer_reports_an_unexpected_exception_in_its_done_event(
    tiny_model: Path, records_file: Path, tmp_path: Path
) -> None:
    import shutil

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model, broken)
    (broken / "model.safetensors").write_bytes(b"\x00garbage, not a safetensors file")
    job, done = _real_trainer(tmp_path, "--dataset", str(records_file), model=str(broken))
    assert (
        job.done_event is not None
        and done is job.done_event
        and done["status"] == "failed"
        and job.returncode == 1
    )
    assert "exited with code" not in done["error"] and len(done["error"]) > 10
    assert "Traceback" in job.log_path.read_text()  # the details stay in train.log


def test_bad_command_line_still_ends_with_a_done_event(tmp_path: Path) -> None:
    job, done = _real_trainer(tmp_path, "--batch-size", "many")
    assert (
        job.done_event is not None
        and done is job.done_event
        and done["status"] == "failed"
        and job.returncode == 2
    )
    assert "--batch-size" in done["error"]


def test_out_of_memory_is_a_failure_with_advice(
    tiny_model: Path, records_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.train as train_mod
    from training.config import TrainConfig

    def no_memory(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 4980736000 bytes. Error code 12"
        )

    monkeypatch.setattr("training.loss.causal_lm_loss", no_memory)
    events: list[dict[str, Any]] = []
    cfg = TrainConfig(
        output=str(tmp_path / "run"), dataset=str(records_file), base_model=str(tiny_model),
        context_len=128, batch_size=2, max_steps=2, eval=False, device="cpu",
    )  # fmt: skip
    result = train_mod.train(cfg, progress_sink=events.append)
    assert result.status is train_mod.TrainStatus.FAILED
    assert result.error.startswith("out of memory: lower --batch-size")
    done = [e for e in events if e["event"] == "done"]
    assert len(done) == 1 and done[0]["status"] == "failed" and "out of memory" in done[0]["error"]
    assert events[-1] is done[0]


def test_cancel_during_evaluation_keeps_the_adapter_and_does_not_promote(
    tiny_model: Path, records_file: Path, tmp_path: Path
) -> None:
    """Cancelling while the new adapter is evaluated ends the run cancelled, between holes."""
    import os

    cmd = train_command(
        workspace=tmp_path / "ws",
        dataset=records_file,
        base_model=str(tiny_model),
        output=tmp_path / "run",
        options={"maxSteps": 2, "batchSize": 1, "contextLen": 64, "maxHoles": 40},
    )
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    job = TrainingJob(cmd, tmp_path / "run", env={**os.environ, **env}, nice=False)

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == "eval" and event.get("done") == 1:
            job.cancel(grace_s=120)

    job.on_event = on_event
    done = job.start().wait(timeout=300)
    assert done["status"] == "canceled" and job.returncode == 2, done
    assert "during evaluation" in done["message"] and not done.get("promote")
    assert done["adapter"] and Path(done["adapter"]).is_dir()
    counted = [e for e in job.events if e.get("event") == "eval" and "done" in e]
    assert counted and counted[-1]["done"] < counted[-1]["total"]  # stopped between holes


def test_train_and_eval_sync_a_workspace_that_was_never_built(
    tiny_model: Path, sample_records: list[dict[str, Any]], tmp_path: Path
) -> None:
    """``codellama-train --workspace W`` / ``codellama-eval --workspace W`` build W's dataset
    themselves (then sync it incrementally), as the server's fine-tune does."""
    import os
    import subprocess

    ws = tmp_path / "ws"
    for record in sample_records:
        (ws / record["file_path"]).parent.mkdir(parents=True, exist_ok=True)
        (ws / record["file_path"]).write_text(record["content"])
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    common = ["--workspace", str(ws), "--base-model", str(tiny_model)]
    train = subprocess.run(
        [sys.executable, "-m", "training.train", *common, "--output", str(tmp_path / "run"),
         "--max-steps", "1", "--batch-size", "1", "--context-len", "64", "--no-eval"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-2000:]
    assert "files kept" in train.stderr and (ws / ".codellama" / "dataset.jsonl").is_file()
    evaluate = subprocess.run(
        [sys.executable, "-m", "training.evaluate", *common, "--max-holes", "2", "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    assert '"holes"' in evaluate.stdout
