"""End-to-end LoRA training on a tiny random Llama (CPU, seconds)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from training.config import TrainConfig
from training.train import TrainStatus, main, train


def _cfg(model: Path, data: Path, out: Path, **kw: Any) -> TrainConfig:
    base: dict[str, Any] = {
        "output": str(out),
        "dataset": str(data),
        "base_model": str(model),
        "context_len": 128,
        "batch_size": 2,
        "lr": 5e-3,
        "eval": False,
        "device": "cpu",
    }
    base.update(kw)
    return TrainConfig(**base)


def test_cli_trains_adapter_that_loads_and_changes_outputs(
    tiny_model: Path, records_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from model_runtime.loader import load_model

    out = tmp_path / "run"
    code = main(
        [
            "--dataset", str(records_file), "--base-model", str(tiny_model), "--output", str(out),
            "--context-len", "128", "--batch-size", "2", "--max-steps", "6", "--lr", "5e-3",
            "--no-eval", "--device", "cpu", "--progress", "json", "--json",
        ]
    )  # fmt: skip
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    steps = [e for e in lines if e.get("event") == "step"]
    assert [e["step"] for e in steps] == list(range(1, 7))
    assert {"step", "total", "loss", "tokens_per_s", "eta_s"} <= set(steps[0])
    result = lines[-1]
    assert result["status"] == "success" and result["steps"] == 6

    adapter = out / "adapter"
    for name in ("adapter_config.json", "adapter_model.safetensors", "codellama_adapter.json"):
        assert (adapter / name).is_file()
    meta = json.loads((adapter / "codellama_adapter.json").read_text())
    assert meta["template"] == "starcoder" and meta["base_model"] == str(tiny_model)
    assert meta["fim_order"] == "spm"  # FIM tokens were added: served with SPM prompts
    run = json.loads((out / "run.json").read_text())
    assert run["added_tokens"] == ["<fim_prefix>", "<fim_suffix>", "<fim_middle>"]
    assert len(run["dataset_hash"]) == 64 and run["settings"]["lora_r"] == 16
    assert run["padding_fraction"] < 0.2 and run["status"] == "success"
    assert (out / "loss.png").stat().st_size > 1000
    assert not (out / "adapter.tmp").exists()

    base = load_model(str(tiny_model), device="cpu")
    tuned = load_model(str(tiny_model), adapter=str(adapter), device="cpu")
    assert tuned.template.name == "starcoder" and tuned.fim_order == "spm"
    assert base.fim_order == "psm"
    ids = tuned.template.encode_infill(tuned.tokenizer, "def mean(values):\n    return ", "\n")
    with torch.no_grad():
        new = tuned.model(input_ids=torch.tensor([ids])).logits[0, -1]
        plain_ids = base.tokenizer("def mean(values):\n    return ")["input_ids"]
        old = base.model(input_ids=torch.tensor([plain_ids])).logits[0, -1]
        tuned_plain = tuned.model(input_ids=torch.tensor([plain_ids])).logits[0, -1]
    assert new.shape[0] == len(tuned.tokenizer)
    assert not torch.allclose(old, tuned_plain[: old.shape[0]], atol=1e-4)


def test_cancel_keeps_checkpoint_no_adapter_then_resume(
    tiny_model: Path, records_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cancel = threading.Event()

    def sink(event: dict[str, Any]) -> None:
        if event.get("event") == "step" and event["step"] == 2:
            cancel.set()

    first = train(
        _cfg(tiny_model, records_file, out, max_steps=5), cancel=cancel, progress_sink=sink
    )
    assert first.status is TrainStatus.CANCELED, first.error
    assert first.steps == 2 and first.adapter_dir is None
    assert not (out / "adapter").exists()
    assert first.checkpoint and Path(first.checkpoint, "optimizer.pt").is_file()

    events: list[dict[str, Any]] = []
    second = train(
        _cfg(tiny_model, records_file, out, max_steps=5, resume=True), progress_sink=events.append
    )
    assert second.status is TrainStatus.SUCCESS, second.error
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps == [3, 4, 5]
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_cancel_file_stops_run(tiny_model: Path, records_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"

    def sink(event: dict[str, Any]) -> None:
        if event.get("event") == "step":
            (out / "CANCEL").touch()

    result = train(_cfg(tiny_model, records_file, out, max_steps=4), progress_sink=sink)
    assert result.status is TrainStatus.CANCELED and result.steps == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dataset": "/nonexistent/dataset.jsonl"}, "no dataset"),
        ({"target_modules": ("nope",)}, "target-modules"),
        ({"output": ""}, "--output"),
    ],
)
def test_bad_input_fails_with_clear_message(
    tiny_model: Path, records_file: Path, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    cfg = _cfg(tiny_model, records_file, tmp_path / "run", max_steps=1)
    for k, v in change.items():
        setattr(cfg, k, v)
    result = train(cfg, progress_sink=lambda _e: None)
    assert result.status is TrainStatus.FAILED
    assert message in result.error


def test_config_validation_names_the_flag() -> None:
    with pytest.raises(ValueError, match="--fim-rate"):
        TrainConfig(output="x", fim_rate=2.0)


def test_budget_too_small_for_one_step_fails_clearly(
    tiny_model: Path, records_file: Path, tmp_path: Path
) -> None:
    cfg = _cfg(tiny_model, records_file, tmp_path / "run", max_minutes=1e-6)
    result = train(cfg, progress_sink=lambda _e: None)
    assert result.status is TrainStatus.FAILED and "--max-minutes" in result.error
    assert not (tmp_path / "run" / "adapter").exists()
