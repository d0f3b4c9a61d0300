"""Evaluation through the runtime Engine, the promotion gate, and the eval CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from training.config import TrainConfig
from training.evaluate import gate, main, report_markdown
from training.train import TrainStatus, train


def _report(new: float, served: float, adapter: str | None = None) -> dict[str, Any]:
    def side(em: float) -> dict[str, Any]:
        return {
            "all": {
                "exact_match": em,
                "edit_similarity": em,
                "identifier_em": em,
                "identifier_f1": em,
            }
        }

    return {"holes": 10, "base": {"adapter": adapter, **side(served)}, "adapter": side(new)}


@pytest.mark.parametrize(
    ("new", "served", "tol", "promote"),
    [
        (30.0, 20.0, 0.0, True),
        (20.0, 20.0, 0.0, True),
        (19.0, 20.0, 0.0, False),
        (19.0, 20.0, 2.0, True),
    ],
)
def test_gate(new: float, served: float, tol: float, promote: bool) -> None:
    decision = gate(_report(new, served), tolerance=tol)
    assert decision["promote"] is promote
    assert ("not promoted" in decision["reason"]) is (not promote)


def test_gate_tie_on_exact_match_is_decided_by_the_other_metrics() -> None:
    worse_es = _report(0.0, 0.0)
    worse_es["adapter"]["all"]["edit_similarity"] = 14.0
    worse_es["base"]["all"]["edit_similarity"] = 27.0
    decision = gate(worse_es)
    assert decision["promote"] is False
    assert "edit_similarity drops" in decision["reason"]
    better_es = _report(0.0, 0.0)
    better_es["adapter"]["all"]["edit_similarity"] = 30.0
    assert gate(better_es)["promote"] is True


def test_gate_without_holes_never_promotes() -> None:
    assert gate({"holes": 0, "base": {}})["promote"] is False
    with pytest.raises(ValueError, match="gate metric"):
        gate(_report(1, 1), metric="bleu")


def test_training_run_evaluates_base_vs_adapter(
    tiny_model: Path, records_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    cfg = TrainConfig(
        output=str(out),
        dataset=str(records_file),
        base_model=str(tiny_model),
        context_len=128,
        batch_size=2,
        max_steps=3,
        device="cpu",
        max_holes=6,
        eval_max_new_tokens=6,
        val_fraction=0.25,
    )
    result = train(cfg, progress_sink=lambda _e: None)
    assert result.status is TrainStatus.SUCCESS, result.error
    report = json.loads((out / "eval.json").read_text())
    assert report["holes"] == 6 and report["files"] >= 1
    assert set(report["base"]["all"]) >= {"exact_match", "edit_similarity", "identifier_em", "n"}
    assert report["adapter"]["adapter"] == result.adapter_dir
    assert isinstance(result.promote, bool) and result.promote == report["gate"]["promote"]
    md = (out / "eval.md").read_text()
    assert "| base" in md and "Gate:" in md
    run = json.loads((out / "run.json").read_text())
    assert run["metrics"]["gate"] == report["gate"]
    validation = set(run["validation_files"])
    assert validation and {s["path"] for s in report["samples"]} <= validation

    code = main(
        [
            "--dataset", str(records_file), "--base-model", str(tiny_model),
            "--adapter", str(result.adapter_dir), "--max-holes", "4", "--max-new-tokens", "4",
            "--all-files", "--device", "cpu", "--json",
        ]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1
    obj = json.loads(printed[0])
    assert obj["holes"] == 4 and "base" in obj and "adapter" in obj and "gate" in obj
    assert "EM" in report_markdown(obj)


class _ScriptedEngine:
    """The Engine surface evaluate_engine uses, with a failure or a slow side on demand."""

    def __init__(self, served: str | None, *, fail_on: str | None = None, delay: float = 0.0):
        from types import SimpleNamespace

        self.loaded = SimpleNamespace(adapter=served)
        self.fail_on, self.delay, self.swaps = fail_on, delay, [served]

    def set_adapter(self, adapter: str | None) -> None:
        self.loaded.adapter = adapter
        self.swaps.append(adapter)

    def complete(self, request: Any, cancel: Any = None) -> Any:
        import time
        from types import SimpleNamespace

        if self.fail_on is not None and self.loaded.adapter == self.fail_on:
            raise RuntimeError("generation failed")
        time.sleep(self.delay)
        return SimpleNamespace(text="x")


def _holes(n: int) -> list[Any]:
    from training.holes import Hole

    return [Hole(f"f{i}.py", "a = ", "1", "\n", "line") for i in range(n)]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_evaluate_engine_restores_the_served_adapter_on_failure(error: type) -> None:
    from training.evaluate import evaluate_engine

    engine = _ScriptedEngine("/served", fail_on="/new")
    if error is KeyboardInterrupt:  # a cancel arriving mid-evaluation
        engine.complete = lambda *_a, **_k: (_ for _ in ()).throw(KeyboardInterrupt())  # type: ignore[method-assign]
    with pytest.raises(error):
        evaluate_engine(engine, _holes(3), adapter="/new", baseline_adapter=None)
    assert engine.loaded.adapter == "/served"


def test_evaluate_engine_time_budget_scores_the_holes_both_sides_finished() -> None:
    from training.evaluate import evaluate_engine

    engine = _ScriptedEngine(None, delay=0.05)
    report = evaluate_engine(engine, _holes(40), adapter="/new", max_seconds=0.5)
    assert report["budget_stopped"] is True
    assert 0 < report["holes"] < 40
    assert report["base"]["all"]["n"] == report["adapter"]["all"]["n"] == report["holes"]
    assert engine.loaded.adapter is None
