"""PEFT LoRA adapter → GGUF LoRA, with llama.cpp's own converter, cached by content.

llama.cpp serves LoRA adapters as GGUF files. :func:`convert_adapter` runs llama.cpp's
``convert_lora_to_gguf.py`` (from the llama-cpp-python 0.3.36 sdist's ``vendor/llama.cpp``;
``scripts/build_llama_cpp.sh`` keeps it, with the ``conversion/`` model definitions and the
vendored ``gguf-py`` it imports, in ``.venv/share/llama.cpp-convert/``) in a subprocess:

    python convert_lora_to_gguf.py --base <dir with config.json> --outtype f16 \\
        --outfile <tmp> <adapter dir>

- **The base's config only**: the converter reads the base model's ``config.json`` (the
  architecture, layer count, head sizes), never its weights. A bundled model's config is the
  converted checkpoint's (:func:`model_runtime.spec.bundled_cache_path`) when there is one, else
  it is read from the GGUF (``AutoConfig.from_pretrained(dir, gguf_file=...)``, ~20 s once for
  Qwen2.5-Coder-0.5B, then cached under ``cache_dir()/lora-base/``); transformers leaves
  ``architectures`` empty there, so it is set from the model type (``qwen2`` →
  ``Qwen2ForCausalLM``).
- **Cached by content**: the result is ``cache_dir()/lora-gguf/<digest>.gguf`` where the digest
  covers the adapter's config and weights, the base config and the output type; converting the
  same adapter again is a file lookup, a retrained adapter in the same directory gets a new
  file. Written to a temporary name then renamed, under a file lock (two processes never
  convert the same adapter at once, nobody sees half a file).
- **f16**: the LoRA A/B matrices as float16 (half the size of f32; the rounding is far below
  what the Q4_K_M base weights already carry).
- **Clear errors** (:class:`LoraConversionError`): the converter not installed (run
  ``scripts/build_llama_cpp.sh``), a directory that is not a PEFT LoRA adapter, an adapter that
  also trains token embeddings (``trainable_token_indices``: the FIM tokens added to a base
  without them; a GGUF LoRA cannot carry those), or the converter's own failure (the end of its
  output).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from model_runtime.spec import file_lock

__all__ = [
    "CONVERTER_ENV",
    "OUTTYPE",
    "LoraConversionError",
    "base_config_dir",
    "convert_adapter",
    "converter_dir",
    "converter_script",
]

CONVERTER_ENV = "CODELLAMA_LLAMA_CPP_CONVERT"
"""Environment variable naming another directory holding ``convert_lora_to_gguf.py``."""
OUTTYPE = "f16"
"""The LoRA GGUF's tensor type (``f16`` or ``f32``)."""
_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin")
_TAIL_LINES = 15


class LoraConversionError(RuntimeError):
    """The adapter could not be converted; the message says why and what to do."""


def converter_dir() -> Path:
    """Where llama.cpp's converter lives: ``$CODELLAMA_LLAMA_CPP_CONVERT`` or the venv's
    ``share/llama.cpp-convert`` (put there by ``scripts/build_llama_cpp.sh``)."""
    env = os.environ.get(CONVERTER_ENV)
    return Path(env).expanduser() if env else Path(sys.prefix) / "share" / "llama.cpp-convert"


def converter_script() -> Path:
    """``convert_lora_to_gguf.py``; :class:`LoraConversionError` when it is not installed."""
    script = converter_dir() / "convert_lora_to_gguf.py"
    if not script.is_file() or not (script.parent / "conversion").is_dir():
        raise LoraConversionError(
            f"llama.cpp's LoRA converter is not installed ({script} missing): run "
            "scripts/build_llama_cpp.sh"
        )
    return script


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _config_from_gguf(gguf: Path, target: Path) -> Path:
    """``target/config.json`` read from ``gguf``'s metadata (once; the directory is the cache)."""
    if (target / "config.json").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    with file_lock(target / ".lock"):
        if (target / "config.json").is_file():
            return target
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        try:
            config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        except Exception as exc:  # transformers raises many kinds for a bad GGUF
            raise LoraConversionError(f"cannot read the model config from {gguf}: {exc}") from None
        if not config.architectures:
            arch = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type)
            if arch is None:
                raise LoraConversionError(
                    f"{gguf}: no causal-LM architecture known for model type {config.model_type!r}"
                )
            config.architectures = [arch]
        data = config.to_dict()
        data.pop("quantization_config", None)
        _write_atomic(target / "config.json", json.dumps(data, indent=2) + "\n")
    return target


def base_config_dir(base: str | os.PathLike[str]) -> Path:
    """A directory whose ``config.json`` describes the base model ``base``.

    ``base``: a ``bundled:<name>`` spec, a model directory with ``config.json``, or a GGUF file
    (its config is read from the GGUF metadata into ``cache_dir()/lora-base/``).
    """
    from model_runtime.spec import (
        ModelSpecError,
        bundled_cache_path,
        bundled_gguf_path,
        bundled_model,
        cache_dir,
        is_bundled,
    )

    text = os.fspath(base)
    if is_bundled(text):
        try:
            model = bundled_model(text)
            converted = bundled_cache_path(model.name)
            if (converted / "config.json").is_file():
                return converted
            gguf = bundled_gguf_path(model.name)
        except ModelSpecError as exc:
            raise LoraConversionError(str(exc)) from None
        return _config_from_gguf(gguf, cache_dir() / "lora-base" / model.cache_name)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LoraConversionError(f"base model directory {path} has no config.json")
        return path
    if path.is_file() and path.suffix == ".gguf":
        stat = path.stat()
        key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        name = f"{path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
        return _config_from_gguf(path, cache_dir() / "lora-base" / name)
    raise LoraConversionError(
        f"base model {text!r}: give a bundled:<name> spec, a model directory with config.json "
        "or a GGUF file"
    )


def _check_adapter(adapter: Path) -> dict[str, object]:
    if not adapter.is_dir():
        raise LoraConversionError(f"adapter {adapter} is not a directory")
    config_path = adapter / "adapter_config.json"
    if not config_path.is_file():
        raise LoraConversionError(f"{adapter} is not a PEFT adapter (no adapter_config.json)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LoraConversionError(f"{config_path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict) or str(config.get("peft_type", "")).upper() != "LORA":
        raise LoraConversionError(f"{adapter} is not a LoRA adapter (peft_type must be LORA)")
    if config.get("trainable_token_indices") or config.get("modules_to_save"):
        raise LoraConversionError(
            f"{adapter} also trains token embeddings or whole modules (trainable_token_indices / "
            "modules_to_save: the FIM tokens added to a base model without them); a GGUF LoRA "
            "cannot carry them: serve this adapter with backend 'inprocess'"
        )
    if not any((adapter / name).is_file() for name in _ADAPTER_FILES[1:]):
        raise LoraConversionError(f"{adapter} has no adapter_model.safetensors")
    return config


def _digest(adapter: Path, base_dir: Path, outtype: str) -> str:
    digest = hashlib.sha256(f"convert_lora_to_gguf|{outtype}\n".encode())
    for name in (*_ADAPTER_FILES, "config.json"):
        path = (base_dir if name == "config.json" else adapter) / name
        if path.is_file():
            digest.update(f"{name}\n".encode())
            with open(path, "rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
    return digest.hexdigest()


def convert_adapter(
    adapter_dir: str | os.PathLike[str],
    base: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    outtype: str = OUTTYPE,
    timeout_s: float = 900.0,
) -> Path:
    """The GGUF LoRA of the PEFT adapter in ``adapter_dir`` for base model ``base``.

    ``base``: see :func:`base_config_dir`. ``out``: write exactly there (converted again each
    call); by default the content-keyed cache ``cache_dir()/lora-gguf/<digest>.gguf`` is used,
    converting only when the file is not there yet. Raises :class:`LoraConversionError`.
    """
    from model_runtime.spec import cache_dir

    if outtype not in ("f16", "f32"):
        raise ValueError(f"outtype must be f16 or f32, got {outtype!r}")
    adapter = Path(adapter_dir).expanduser().resolve()
    _check_adapter(adapter)
    script = converter_script()
    base_dir = base_config_dir(base)
    if out is not None:
        target = Path(out).expanduser().resolve()
    else:
        target = cache_dir() / "lora-gguf" / f"{_digest(adapter, base_dir, outtype)[:32]}.gguf"
        if target.is_file():
            return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f".{target.name}.lock"):
        if out is None and target.is_file():
            return target  # converted by another process while we waited
        _run_converter(script, adapter, base_dir, target, outtype, timeout_s)
    return target


def _run_converter(
    script: Path, adapter: Path, base_dir: Path, target: Path, outtype: str, timeout_s: float
) -> None:
    tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}.gguf")
    command = [
        sys.executable, str(script), "--base", str(base_dir), "--outtype", outtype,
        "--outfile", str(tmp), str(adapter),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONSAFEPATH", None)  # the script imports conversion/ from its own directory
    try:
        proc = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if proc.returncode != 0 or not tmp.is_file():
            lines = (proc.stderr or proc.stdout or "").strip().splitlines()[-_TAIL_LINES:]
            raise LoraConversionError(
                f"llama.cpp's convert_lora_to_gguf.py failed on {adapter} (exit "
                f"{proc.returncode}):\n" + "\n".join(lines)
            )
        os.replace(tmp, target)
    except subprocess.TimeoutExpired:
        raise LoraConversionError(
            f"converting {adapter} took longer than {timeout_s:.0f} s"
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
