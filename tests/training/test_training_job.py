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
    print("not json", flush=True)
    for step in range(1, 1000):
        if stop or (sys.argv[2] == "polite" and (run / "CANCEL").exists()):
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
