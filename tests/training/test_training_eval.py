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


# -- codellama-eval --backend ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--backend", "openai"], "--backend openai needs --endpoint URL"),
        (["--backend", "llama.cpp"], "serves a bundled model's GGUF"),
        (["--backend", "openai", "--endpoint", "ftp://x"], "endpoint"),
    ],
)
def test_eval_backend_errors_are_one_line(
    tiny_model: Path,
    records_file: Path,
    args: list[str],
    error: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["--dataset", str(records_file), "--base-model", str(tiny_model), "--all-files"]
    assert main([*base, "--max-holes", "2", *args]) == 1
    err = capsys.readouterr().err
    assert err.startswith("codellama-eval: ") and error in err, err


def _fake_openai_engine(answer: str) -> Any:
    """A stdlib OpenAI-compatible server streaming ``answer`` for every completion; it records
    the requests and their Authorization headers."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[dict[str, Any], str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            models = {"data": [{"id": "served", "owned_by": "vllm"}]}
            self._send(json.dumps(models).encode(), "application/json")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((body, self.headers.get("Authorization", "")))
            events = [{"choices": [{"text": answer, "finish_reason": None}]}]
            events.append({"choices": [{"text": "", "finish_reason": "stop"}]})
            data = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            self._send(data.encode(), "text/event-stream")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.seen = seen  # type: ignore[attr-defined]
    return server


def test_eval_through_an_openai_engine_scores_the_same_holes(
    tiny_model: Path,
    records_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same holes and prompts as in process (token ids: a vLLM flavor), the key from env."""
    from model_runtime.engine import Engine
    from model_runtime.loader import load_model
    from training.evaluate import validation_records
    from training.holes import make_holes

    fake = _fake_openai_engine("1")
    monkeypatch.setenv("EVAL_TEST_KEY", "sk-eval-1")
    url = f"http://127.0.0.1:{fake.server_address[1]}"
    args = [
        "--dataset", str(records_file), "--base-model", str(tiny_model), "--all-files",
        "--max-holes", "3", "--no-repo-context", "--context-tokens", "64", "--json",
    ]  # fmt: skip
    try:
        code = main([*args, "--backend", "openai", "--endpoint", url,
                     "--engine-model", "served", "--api-key-env", "EVAL_TEST_KEY"])  # fmt: skip
    finally:
        fake.shutdown()
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["backend"] == "openai" and report["engine_errors"] == 0
    assert report["holes"] == 3 and "1" in [s["base"] for s in report["samples"]]
    holes = make_holes(validation_records(str(records_file), all_files=True), max_holes=3)
    local = Engine(
        load_model(str(tiny_model), device="cpu"), context_tokens=64, token_healing=False
    )
    expected = [local.prompt_for(_request(h)).input_ids for h in holes]
    assert [body["prompt"] for body, _ in fake.seen] == expected
    assert {auth for _, auth in fake.seen} == {"Bearer sk-eval-1"}
    assert {body["model"] for body, _ in fake.seen} == {"served"}


def _request(hole: Any) -> Any:
    from model_runtime.engine import CompletionRequest

    block = hole.kind == "block"
    return CompletionRequest(
        path=hole.path, prefix=hole.prefix, suffix=hole.suffix,
        max_new_tokens=48 * (2 if block else 1), multiline=block,
    )  # fmt: skip


def _random_qwen_lora(path: Path) -> Path:
    """A PEFT LoRA file for Qwen2.5-Coder-0.5B's q/v projections (random A and B, no training)."""
    import torch
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for layer in range(24):
        for module, out in (("q_proj", 896), ("v_proj", 128)):
            name = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{name}.lora_A.weight"] = 0.05 * torch.randn(4, 896, generator=generator)
            tensors[f"{name}.lora_B.weight"] = 0.05 * torch.randn(out, 4, generator=generator)
    save_file(tensors, str(path / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8,
        "target_modules": ["q_proj", "v_proj"], "base_model_name_or_path": "bundled",
    }  # fmt: skip
    (path / "adapter_config.json").write_text(json.dumps(config))
    return path


@pytest.mark.slow
def test_eval_through_the_managed_llama_cpp_engine(
    records_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """codellama-eval --backend llama.cpp: base then a PEFT adapter (converted, restarted)."""
    from model_runtime.llama_server import llama_cpp_available

    if not llama_cpp_available():
        pytest.fail("llama-cpp-python[server] is not installed: run scripts/build_llama_cpp.sh")
    adapter = _random_qwen_lora(tmp_path / "adapter")
    code = main(
        [
            "--dataset", str(records_file), "--base-model", "bundled:qwen2.5-coder-0.5b",
            "--all-files", "--max-holes", "3", "--max-new-tokens", "8", "--backend",
            "llama.cpp", "--adapter", str(adapter), "--context-tokens", "256", "--json",
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["backend"] == "llama.cpp" and report["engine_errors"] == 0
    assert report["holes"] == 3 and report["adapter"]["adapter"] == str(adapter)
    # Healed as in process (the engine's grammar), the prompt budget ours.
    assert report["token_healing"] is True and report["context_tokens"] == 256
    assert any(s["base"].strip() for s in report["samples"])
