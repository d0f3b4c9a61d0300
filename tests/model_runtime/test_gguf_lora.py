"""PEFT adapter → GGUF LoRA (llama.cpp's converter) → served by the managed llama.cpp engine.

Fast tests: the error paths (converter missing, not an adapter, an adapter with trained token
embeddings, the converter failing, a bad adapter given to the managed server) without any model.

Slow tests (fail, never skip, without ``scripts/build_llama_cpp.sh``): the real converter on a
tiny random Llama adapter; and end to end a real LoRA fine-tune of the bundled Qwen2.5-Coder
(our trainer, a few steps at a high learning rate on files with one distinctive pattern),
converted, served by llama.cpp on the bundled GGUF, whose greedy completion differs from the
base's and writes the trained pattern.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from model_runtime.gguf_lora import (
    CONVERTER_ENV,
    LoraConversionError,
    base_config_dir,
    convert_adapter,
    converter_dir,
)


def _fake_adapter(path: Path, **config: Any) -> Path:
    path.mkdir(parents=True)
    body = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, **config}
    (path / "adapter_config.json").write_text(json.dumps(body))
    (path / "adapter_model.safetensors").write_bytes(b"\0" * 16)
    return path


def _base_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    return path


def test_missing_converter_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CONVERTER_ENV, str(tmp_path / "nowhere"))
    adapter = _fake_adapter(tmp_path / "adapter")
    with pytest.raises(LoraConversionError, match=r"scripts/build_llama_cpp\.sh"):
        convert_adapter(adapter, _base_dir(tmp_path / "base"))


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("missing", "is not a directory"),
        ("empty", "no adapter_config.json"),
        ("not-lora", "not a LoRA adapter"),
        ("tokens", "cannot carry them"),
        ("no-weights", "no adapter_model.safetensors"),
    ],
)
def test_bad_adapter_dirs(tmp_path: Path, setup: str, error: str) -> None:
    adapter = tmp_path / "adapter"
    if setup == "empty":
        adapter.mkdir()
    elif setup == "not-lora":
        _fake_adapter(adapter, peft_type="PROMPT_TUNING")
    elif setup == "tokens":
        _fake_adapter(adapter, trainable_token_indices={"embed_tokens": [1, 2]})
    elif setup == "no-weights":
        _fake_adapter(adapter)
        (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(LoraConversionError, match=error):
        convert_adapter(adapter, _base_dir(tmp_path / "base"))


def test_bad_base(tmp_path: Path) -> None:
    with pytest.raises(LoraConversionError, match=r"no config\.json"):
        base_config_dir(tmp_path)
    with pytest.raises(LoraConversionError, match="give a bundled"):
        base_config_dir(tmp_path / "missing")
    with pytest.raises(LoraConversionError, match="unknown bundled model"):
        base_config_dir("bundled:nope")


def test_converter_failure_shows_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "convert"
    (fake / "conversion").mkdir(parents=True)
    (fake / "convert_lora_to_gguf.py").write_text(
        "import sys\nprint('INFO: loading', file=sys.stderr)\n"
        "print('ERROR: Unexpected name model.norm.foo', file=sys.stderr)\nsys.exit(3)\n"
    )
    monkeypatch.setenv(CONVERTER_ENV, str(fake))
    monkeypatch.setenv("CODELLAMA_CACHE", str(tmp_path / "cache"))
    adapter = _fake_adapter(tmp_path / "adapter")
    with pytest.raises(LoraConversionError, match=r"(?s)exit 3.*Unexpected name model\.norm"):
        convert_adapter(adapter, _base_dir(tmp_path / "base"))
    assert not list((tmp_path / "cache" / "lora-gguf").glob("*.gguf"))  # nothing half-written


def test_managed_server_refuses_a_bad_adapter_and_keeps_serving(tmp_path: Path) -> None:
    """The conversion fails before the server is touched: it is not restarted (nor stopped)."""
    from model_runtime.llama_server import LlamaServer
    from model_runtime.loaded import ModelLoadError

    server = LlamaServer(tmp_path / "model.gguf", base_config=_base_dir(tmp_path / "base"))
    restarts: list[Any] = []

    def restart(*, lora: Any = None) -> LlamaServer:
        restarts.append(lora)
        return server

    server.restart = restart  # type: ignore[method-assign]
    with pytest.raises(ModelLoadError, match=r"no adapter_config\.json"):
        server._load_adapter(str(tmp_path))
    with pytest.raises(ModelLoadError, match=r"PEFT adapter directory or a LoRA \.gguf"):
        server._load_adapter(str(tmp_path / "missing.gguf"))
    assert restarts == []
    server._load_adapter(None)
    assert restarts == [None]


# -- the real converter and the real engine (slow) ---------------------------------------------


def _require_converter() -> None:
    """Fail (never skip) without llama.cpp's converter: ``make test`` builds it."""
    if not (converter_dir() / "convert_lora_to_gguf.py").is_file():
        pytest.fail("llama.cpp's converter is not installed: run scripts/build_llama_cpp.sh")


@pytest.mark.slow
def test_real_converter_on_a_tiny_llama_adapter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_converter()
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from model_runtime.tiny import END_OF_TEXT, build_tiny_llama, train_bpe_tokenizer

    monkeypatch.setenv("CODELLAMA_CACHE", str(tmp_path / "cache"))
    tokenizer = train_bpe_tokenizer(["def f(x):\n    return x\n"] * 4, specials=[END_OF_TEXT])
    base = build_tiny_llama(tmp_path / "base", tokenizer=tokenizer)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"],
                   init_lora_weights=False),
    )  # fmt: skip
    model.save_pretrained(str(tmp_path / "adapter"))
    started = time.monotonic()
    gguf = convert_adapter(tmp_path / "adapter", base)
    seconds = time.monotonic() - started
    assert gguf.is_file() and gguf.parent == tmp_path / "cache" / "lora-gguf"
    from gguf import GGUFReader

    reader = GGUFReader(gguf)
    names = {t.name for t in reader.tensors}
    assert {"blk.0.attn_q.weight.lora_a", "blk.1.ffn_down.weight.lora_b"} <= names
    assert len(names) == 2 * 3 * 2  # A and B × three modules × two layers
    # Cached by content: the same adapter is a lookup, a changed one is converted again.
    started = time.monotonic()
    assert convert_adapter(tmp_path / "adapter", base) == gguf
    assert time.monotonic() - started < 0.5 < seconds
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    config["lora_alpha"] = 16
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(config))
    assert convert_adapter(tmp_path / "adapter", base) != gguf


PATTERN_FILES = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
"""Every function of the fine-tune's files returns ``zq_blend(value, "QX<i><k>")``."""


def _pattern_dataset(path: Path) -> Path:
    lines = []
    for i, name in enumerate(PATTERN_FILES):
        content = "".join(
            f'def {name}_{k}(value):\n    return zq_blend(value, "QX{i}{k}")\n\n\n'
            for k in range(4)
        )
        record = {
            "file_path": f"pkg/{name}.py", "content": content, "language": "python",
            "sha256": hashlib.sha256(content.encode()).hexdigest(), "size": len(content),
            "mtime": 0.0, "source": "file", "redactions": 0, "schema_version": 1,
        }  # fmt: skip
        lines.append(json.dumps(record) + "\n")
    path.write_text("".join(lines))
    return path


FINETUNE_STEPS = 15
"""Three passes over the ~10 packed rows at lr 3e-3: the pattern wins greedy decoding (loss
0.9; 6 steps, loss 1.7, only changed the completion). ~95 s of the test's ~110 s on 2 cores."""


@pytest.mark.slow
def test_finetuned_adapter_served_by_llama_cpp(tmp_path: Path) -> None:
    """A real fine-tune → GGUF LoRA → the managed llama.cpp engine completes differently."""
    from model_runtime.engine import CompletionRequest
    from model_runtime.llama_server import LlamaServer, llama_cpp_available
    from model_runtime.openai_engine import remote_loaded
    from model_runtime.spec import QWEN_CODER_MODEL, bundled_gguf_path
    from training.config import TrainConfig
    from training.train import train

    if not llama_cpp_available():
        pytest.fail("llama-cpp-python[server] is not installed: run scripts/build_llama_cpp.sh")
    _require_converter()
    started = time.monotonic()
    result = train(
        TrainConfig(
            output=str(tmp_path / "run"), dataset=str(_pattern_dataset(tmp_path / "data.jsonl")),
            base_model=QWEN_CODER_MODEL, max_steps=FINETUNE_STEPS, lr=3e-3, warmup_steps=0,
            context_len=64, batch_size=2, val_fraction=0.0, eval=False, device="cpu",
            checkpoint_every=10**6, lora_r=8, lora_alpha=16, lora_dropout=0.0, fim_rate=1.0,
            spm_rate=0.0,
        )
    )  # fmt: skip
    assert result.adapter_dir, result.error
    trained_s = time.monotonic() - started
    request = CompletionRequest(
        "pkg/india.py", "def india_0(value):\n    return ", "\n", max_new_tokens=16
    )
    server = LlamaServer(
        bundled_gguf_path("qwen2.5-coder-0.5b"), n_threads=2, log_path=tmp_path / "server.log",
        base_config=QWEN_CODER_MODEL,
    )  # fmt: skip
    with server:
        engine = server.engine(remote_loaded(QWEN_CODER_MODEL), context_tokens=256)
        base = engine.complete(request)
        engine.set_adapter(result.adapter_dir)  # converted (cached), then the server restarts
        assert engine.loaded.adapter == result.adapter_dir
        assert server.lora is not None and server.lora.suffix == ".gguf"
        tuned = engine.complete(request)
        engine.set_adapter(None)
        back = engine.complete(request)
    print(
        f"\nfine-tune {trained_s:.0f} s (loss {result.final_loss:.2f}); conversion "
        f"{server.last_convert_s} s, restart {server.last_restart_s} s\n"
        f"base {base.text!r} | adapter {tuned.text!r} | base again {back.text!r}"
    )
    assert base.error == tuned.error == back.error == ""
    assert tuned.text != base.text
    assert "zq_blend" in tuned.text and "zq_blend" not in base.text  # the trained pattern
    assert back.text == base.text  # the plain model again
