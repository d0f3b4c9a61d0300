"""Engines outside this process for the model host: a managed llama.cpp server or an endpoint.

Setting ``backend`` (issue 13): ``llama.cpp`` starts and owns a llama.cpp server
(:class:`model_runtime.llama_server.LlamaServer`: 127.0.0.1, free port, random bearer token,
dies with us) on the model's GGUF — a bundled model's GGUF
(:func:`model_runtime.spec.bundled_gguf_path`, no conversion) or a ``model`` that is a path to
a ``.gguf`` file; ``openai`` talks to an OpenAI-compatible engine at ``endpoint`` (vLLM,
llama.cpp's ``llama-server``, ...), the API key read from the environment variable named by
``apiKeyEnv``. Either way the engine is a :class:`model_runtime.openai_engine.OpenAIEngine`
whose prompt side (tokenizer, FIM template) is ``remote_loaded(model)``: our prompts and stop
rules, the engine's tokens.

Failures a user can fix raise :class:`model_runtime.loaded.ModelLoadError` with a message
saying what to do (the host turns it into its ``LoadFailure``). Runs on the model worker; the
heavy imports happen here, inside the functions.

Timeouts: the engine's first byte (its prompt prefill) may take :data:`FIRST_BYTE_TIMEOUT_S`,
later silences :data:`READ_TIMEOUT_S`; a request over either answers empty (the editor never
waits longer). ``CODELLAMA_ENGINE_TIMEOUT_S`` (environment) sets the first-byte timeout
(operators of a slow engine; the tests).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from lsp_server.settings import Settings

if TYPE_CHECKING:
    from model_runtime.engine import CompletionResult
    from model_runtime.llama_server import LlamaServer
    from model_runtime.openai_engine import OpenAIEngine
    from model_runtime.spec import ProgressFn

__all__ = [
    "FIRST_BYTE_TIMEOUT_S",
    "READ_TIMEOUT_S",
    "TIMEOUT_ENV",
    "RemoteBackend",
    "Timeouts",
    "engine_timeouts",
    "failed_remotely",
    "gguf_for",
    "open_backend",
]

logger = logging.getLogger(__name__)

TIMEOUT_ENV = "CODELLAMA_ENGINE_TIMEOUT_S"
"""Environment variable overriding :data:`FIRST_BYTE_TIMEOUT_S` (seconds, > 0)."""
FIRST_BYTE_TIMEOUT_S = 20.0
"""Longest wait for the engine's answer to start (it evaluates the prompt meanwhile)."""
READ_TIMEOUT_S = 10.0
"""Longest silence between two streamed tokens."""
TOTAL_TIMEOUT_S = 120.0
"""Deadline of one request."""


@dataclass
class RemoteBackend:
    """What :func:`open_backend` made: the engine, the managed server (if any), status info."""

    engine: OpenAIEngine
    server: LlamaServer | None
    info: dict[str, Any] = field(default_factory=dict)


def failed_remotely(result: CompletionResult) -> bool:
    """Whether a remote engine failed this result (``RemoteResult.error``: down, slow,
    garbling) or cut it short (``stop_reason == "interrupted"``): no answer, never cached."""
    return bool(getattr(result, "error", "")) or result.stop_reason == "interrupted"


class Timeouts(TypedDict):
    """:class:`OpenAIEngine`'s timeout arguments."""

    first_byte_timeout_s: float
    read_timeout_s: float
    total_timeout_s: float


def engine_timeouts() -> Timeouts:
    """The :class:`OpenAIEngine` timeouts (``CODELLAMA_ENGINE_TIMEOUT_S`` sets the first)."""
    first = FIRST_BYTE_TIMEOUT_S
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value > 0:
            first = value
        else:
            logger.warning("%s=%r is not a positive number of seconds; ignored", TIMEOUT_ENV, raw)
    return Timeouts(
        first_byte_timeout_s=first,
        read_timeout_s=min(first, READ_TIMEOUT_S),
        total_timeout_s=max(TOTAL_TIMEOUT_S, 2 * first),
    )


def _model(settings: Settings) -> str:
    from model_runtime.spec import BUNDLED_MODEL

    return settings.model.strip() or BUNDLED_MODEL


def gguf_for(model: str, progress: ProgressFn | None = None) -> Path:
    """The GGUF file the managed llama.cpp server serves for the ``model`` setting."""
    from model_runtime.loaded import ModelLoadError
    from model_runtime.spec import BUNDLED_MODEL, bundled_gguf_path, is_bundled

    if is_bundled(model):
        return bundled_gguf_path(model.removeprefix("bundled:"), progress)
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf" and path.is_file():
        return path
    raise ModelLoadError(
        f"backend 'llama.cpp' serves GGUF models: set model to '{BUNDLED_MODEL}' (the default) "
        f"or to the path of a .gguf file ({model!r} is neither); a Hugging Face model needs "
        "backend 'inprocess', or 'openai' with an engine serving it"
    )


def open_backend(
    settings: Settings,
    report: ProgressFn,
    keep_server: Callable[[LlamaServer], None],
) -> RemoteBackend:
    """The engine for ``settings.backend`` (``llama.cpp`` or ``openai``).

    ``keep_server`` receives the managed server *before* it starts, so that the host can stop
    it from another thread (shutdown during a start-up).
    """
    if settings.backend == "llama.cpp":
        return _managed(settings, report, keep_server)
    return _endpoint(settings, report)


def _prompt_side(model: str, settings: Settings, report: ProgressFn) -> Any:
    from model_runtime.openai_engine import remote_loaded

    report(1, 5, f"loading the tokenizer of {model}")
    return remote_loaded(model, trust_remote_code=settings.trust_remote_code)


def _managed(
    settings: Settings, report: ProgressFn, keep_server: Callable[[LlamaServer], None]
) -> RemoteBackend:
    from model_runtime.llama_server import LlamaServer, LlamaServerError, llama_cpp_available
    from model_runtime.loaded import ModelLoadError

    if not llama_cpp_available():
        raise ModelLoadError(
            "backend 'llama.cpp' needs llama-cpp-python[server], which is not installed: run "
            "scripts/build_llama_cpp.sh (builds it once into .venv), or set backend to "
            "'inprocess'"
        )
    model = _model(settings)
    report(0, 5, f"finding the GGUF of {model}")
    gguf = gguf_for(model, lambda done, total, message: report(0, 5, message))
    loaded = _prompt_side(model, settings, report)
    n_ctx = max(4096, settings.context_tokens + settings.max_new_tokens + 64)
    server = LlamaServer(gguf, n_ctx=n_ctx)
    keep_server(server)
    report(2, 5, f"starting llama.cpp on {gguf.name}")
    try:
        server.start()
    except LlamaServerError as exc:
        logger.error("llama.cpp server failed to start: %s", exc)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(
            f"the llama.cpp server did not start ({first}); its log: {server.log_path}"
        ) from None
    logger.info("llama.cpp server pid %s at %s serving %s", server.pid, server.endpoint, gguf)
    engine = server.engine(loaded, context_tokens=settings.context_tokens, **engine_timeouts())
    info = {"gguf": str(gguf), "nCtx": n_ctx}
    return RemoteBackend(engine, server, info)


def _endpoint(settings: Settings, report: ProgressFn) -> RemoteBackend:
    from model_runtime.loaded import ModelLoadError

    if not settings.endpoint:  # before any heavy import: nothing is loaded for it
        raise ModelLoadError(
            "backend 'openai' needs the endpoint setting (the engine's base URL, e.g. "
            "http://gpu-box:8000); nothing is served until it is set"
        )
    name = settings.api_key_env
    if name and not os.environ.get(name):
        logger.warning(
            "apiKeyEnv names %s, which is not set in the server's environment: requests go "
            "without an API key",
            name,
        )
    loaded = _prompt_side(_model(settings), settings, report)
    from model_runtime.openai_engine import OpenAIEngine

    try:
        engine = OpenAIEngine(
            loaded,
            endpoint=settings.endpoint,
            engine_model=settings.engine_model,
            api_key_env=name or None,
            context_tokens=settings.context_tokens,
            **engine_timeouts(),
        )
    except ValueError as exc:  # the endpoint (settings already checked it)
        raise ModelLoadError(str(exc)) from None
    return RemoteBackend(engine, None, {})
