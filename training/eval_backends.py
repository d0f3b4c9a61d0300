"""The engine ``codellama-eval`` scores with: in-process transformers, llama.cpp, or an OpenAI server.

``--backend`` (:class:`training.config.EvalConfig`):

- ``inprocess`` -- :class:`model_runtime.engine.Engine` on the loaded model (the default).
  Token healing as the server does it unless ``--no-token-healing``, on every backend that
  can heal (in process, llama.cpp through a grammar; :attr:`OpenAIEngine.heals`).
- ``llama.cpp`` -- a managed llama.cpp server (:class:`model_runtime.llama_server.LlamaServer`,
  127.0.0.1, random port and token, stopped afterwards) on a bundled model's GGUF, served
  directly; adapters reach it through ``set_adapter``, i.e. converted to a GGUF LoRA by
  llama.cpp's converter (cached) and loaded by restarting it. Bundled models only: another
  model has no GGUF of ours (serve it yourself and use ``openai``).
- ``openai`` -- :class:`model_runtime.openai_engine.OpenAIEngine` at ``--endpoint`` serving
  ``--engine-model``, the API key read from the variable ``--api-key-env`` names (vLLM loads
  adapters through its LoRA API; other engines refuse adapters).

Every backend builds the same prompts (our templates, the tokenizer of ``--base-model``), the
same holes and stop rules: only where the tokens come from differs. Engines give an empty
completion for a failed request; :func:`engine_errors` counts them for the report.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["BACKENDS", "EvalBackendError", "engine_errors", "eval_engine"]

BACKENDS = ("inprocess", "llama.cpp", "openai")
"""The values of ``--backend``."""


class EvalBackendError(ValueError):
    """The engine could not be set up; the message says what to do."""


@contextlib.contextmanager
def eval_engine(
    base_model: str,
    *,
    backend: str = "inprocess",
    device: str = "auto",
    context_tokens: int | None = None,
    token_healing: bool = True,
    endpoint: str | None = None,
    engine_model: str = "",
    api_key_env: str | None = None,
    n_threads: int | None = None,
    quantize: str = "auto",
) -> Iterator[Any]:
    """The engine to score with, for the duration of the ``with`` block (a managed llama.cpp
    server is stopped at its end). ``quantize``: the in-process weight format, resolved as
    the server resolves its ``quantize`` setting (``auto``: the server's default choice), so a
    score is the served model's."""
    from model_runtime.prompt import DEFAULT_CONTEXT_TOKENS

    budget = context_tokens or DEFAULT_CONTEXT_TOKENS
    if backend not in BACKENDS:
        raise EvalBackendError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend}")
    if backend == "inprocess":
        from model_runtime.engine import Engine
        from model_runtime.loader import load_model

        yield Engine(
            load_model(base_model, device=device, quantize=quantize),
            context_tokens=budget,
            token_healing=token_healing,
        )
        return
    from model_runtime.openai_engine import OpenAIEngine, remote_loaded

    loaded = remote_loaded(base_model)
    timeouts: dict[str, Any] = {
        "first_byte_timeout_s": 600.0, "read_timeout_s": 120.0, "total_timeout_s": 900.0,
    }  # fmt: skip
    if backend == "openai":
        if not endpoint:
            raise EvalBackendError("--backend openai needs --endpoint URL")
        try:
            yield OpenAIEngine(
                loaded, endpoint=endpoint, engine_model=engine_model, api_key_env=api_key_env,
                context_tokens=budget, token_healing=token_healing, **timeouts,
            )  # fmt: skip
        except ValueError as exc:  # a bad endpoint URL
            raise EvalBackendError(str(exc)) from None
        return
    with _managed_llama(base_model, budget, n_threads) as server:
        yield server.engine(loaded, context_tokens=budget, token_healing=token_healing, **timeouts)


@contextlib.contextmanager
def _managed_llama(base_model: str, budget: int, n_threads: int | None) -> Iterator[Any]:
    from model_runtime.llama_server import LlamaServer, LlamaServerError
    from model_runtime.spec import ModelSpecError, bundled_gguf_path, bundled_model, is_bundled

    if not is_bundled(base_model):
        raise EvalBackendError(
            f"--backend llama.cpp serves a bundled model's GGUF (bundled:qwen2.5-coder-0.5b), not "
            f"{base_model}: serve it with an engine of your own and use --backend openai "
            "--endpoint URL"
        )
    try:
        gguf = bundled_gguf_path(bundled_model(base_model).name)
    except ModelSpecError as exc:
        raise EvalBackendError(str(exc)) from None
    # Room for the prompt, the longest (block) completion and the engine's own BOS.
    n_ctx = max(2048, budget + 512)
    server = LlamaServer(gguf, base_config=base_model, n_ctx=n_ctx, n_threads=n_threads)
    try:
        server.start()
    except LlamaServerError as exc:
        raise EvalBackendError(str(exc)) from None
    try:
        yield server
    finally:
        server.stop()


def engine_errors(engine: Any) -> int:
    """Requests the engine failed (each scored as an empty completion); 0 in process."""
    counters = getattr(engine, "counters", None)
    return int(counters.get("errors", 0)) if isinstance(counters, dict) else 0
