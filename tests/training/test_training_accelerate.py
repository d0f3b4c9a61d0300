"""Two-process data-parallel smoke run through ``accelerate launch`` on CPU (gloo).

accelerate 1.15's ``launch --cpu --num_processes 2`` starts a single process unless an MPI
hostfile is given, so the CPU test uses the torchrun launcher (``--multi_gpu``) and our
``--device cpu``, which makes the Accelerator pick the multi-CPU (gloo) backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_two_process_accelerate_launch(
    tiny_model: Path, records_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    accelerate = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        "-m", "training.train",
        "--dataset", str(records_file), "--base-model", str(tiny_model), "--output", str(out),
        "--context-len", "128", "--batch-size", "1", "--max-steps", "3", "--checkpoint-every", "2",
        "--no-eval", "--device", "cpu", "--progress", "json",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3]  # main process only
    run = json.loads((out / "run.json").read_text())
    assert run["processes"] == 2 and run["status"] == "success"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
