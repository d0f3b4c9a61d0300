"""PEFT adapter → GGUF LoRA (llama.cpp's converter) → served by the managed llama.cpp engine.

Fast tests: the error paths (converter missing, not an adapter, an adapter with trained token
embeddings, the converter failing, a bad adapter given to the managed server) without any model.

Slow test (fails, never skips, without ``scripts/build_llama_cpp.sh``): the real converter on
a tiny random Llama adapter. The whole loop on the bundled Qwen2.5-Coder — "Fine-tune on this
workspace", the adapter converted and served by the managed llama.cpp engine, which then
writes the trained pattern — runs through the LSP server in
``tests/server/test_finetune.py::test_finetune_adapter_is_served_by_the_llama_cpp_engine``.
"""

from __future__ import annotations

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
