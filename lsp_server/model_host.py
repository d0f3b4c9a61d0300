"""The served model's lifecycle: load in the background, hot-swap adapters, report status.

All model work runs on the :class:`~lsp_server.worker.ModelWorker` thread, so nothing here
blocks the event loop and the engine is only ever touched from one thread. torch and the model
runtime are imported inside worker jobs: importing this module is cheap, which is what lets the
server answer ``initialize`` before torch is loaded.

Failures a user can fix (bad model path, missing bundled package, out of memory) become a
:class:`LoadFailure` whose message says what to do; the host then stays in ``failed`` state and
completions answer empty until a new ``model``/``adapter`` setting triggers another load.

Setting ``backend``: ``inprocess`` loads the weights here; ``llama.cpp`` and ``openai`` make a
remote engine (:mod:`lsp_server.remote_engine`). The host owns the managed llama.cpp server:
it is stopped when another load replaces it, when its load fails and by :meth:`ModelHost.close`
(server shutdown / exit), and started again (same port, same adapter) when it died on its own:
before the next request, or at once when it died under a request, which is then sent again.
An unreachable engine never fails a load: the host is ``ready``, completions answer empty and
``error`` says why until the engine answers again.

Size: one class, the engine's lifecycle (load, adapter swap and its recovery, configure, warm
up, close) over three backends; all of it shares the same state (engine, managed server,
served adapter, load generation). What differs per backend is built in
:mod:`lsp_server.remote_engine`.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from lsp_server.settings import Settings
from lsp_server.worker import ModelWorker

if TYPE_CHECKING:
    from model_runtime.engine import CompletionRequest, CompletionResult, Engine
    from model_runtime.llama_server import LlamaServer
    from model_runtime.spec import ProgressFn

__all__ = ["LoadFailure", "LoadState", "ModelHost", "ModelKey"]

T = TypeVar("T")
logger = logging.getLogger(__name__)

REVIVE_INTERVAL_S = 30.0
"""Least time between two restarts of a managed llama.cpp server that died."""


class LoadState(enum.StrEnum):
    """Where the model is in its lifecycle (the value is shown in ``codellama.status``)."""

    NOT_LOADED = "not loaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class LoadFailure(RuntimeError):
    """A model load failed; ``str(self)`` is a user-facing message saying what to do."""


@dataclass(frozen=True)
class ModelKey:
    """The settings that require a full reload when they change (adapter alone hot-swaps).

    Only what the backend uses: device, dtype and quantize are the engine's business on a
    remote backend, and endpoint, engine model and key variable matter only for ``openai``.
    """

    model: str
    device: str
    dtype: str
    trust_remote_code: bool
    quantize: str = "auto"
    backend: str = "inprocess"
    endpoint: str = ""
    engine_model: str = ""
    api_key_env: str = ""

    @classmethod
    def of(cls, settings: Settings) -> ModelKey:
        """The reload-relevant part of ``settings``."""
        local = settings.backend == "inprocess"
        remote = settings.backend == "openai"
        return cls(
            settings.model,
            settings.device if local else "",
            settings.dtype if local else "",
            settings.trust_remote_code,
            settings.quantize if local else "",
            settings.backend,
            settings.endpoint if remote else "",
            settings.engine_model if remote else "",
            settings.api_key_env if remote else "",
        )


def _user_message(what: str, exc: BaseException) -> str:
    """Turn a load exception (of a model or an adapter) into a message that says what to do."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return (
            f"Out of memory loading {what}. Choose a smaller model "
            "(codellama.model = 'bundled:smollm2-135m'), set codellama.dtype to 'float16', "
            "or close other programs using the GPU."
        )
    kind = type(exc).__name__
    if kind in {"ModelLoadError", "ModelSpecError"}:
        return f"Could not load {what}: {text}"
    return (
        f"Could not load {what} ({kind}: {text}). Check codellama.model "
        "(a Hugging Face id, a local model directory or 'bundled:qwen2.5-coder-0.5b') and "
        "codellama.adapter; the server keeps running without completions."
    )


class ModelHost:
    """Owns the engine; every call that touches it is a job on the model worker."""

    def __init__(self, worker: ModelWorker) -> None:
        self.worker = worker
        self.state = LoadState.NOT_LOADED
        self.error: str | None = None
        """User-facing message of the last failed load."""
        self.key: ModelKey | None = None
        self.adapter: str | None = None
        """The adapter the engine really serves (None: the base model, or nothing loaded).
        The fine-tune's gate and ``codellama.status`` take it from here, never from settings."""
        self.info: dict[str, Any] = {}
        """model id, device, dtype, template, adapter of the served model (for status)."""
        self.load_seconds: float | None = None
        self.backend = "inprocess"
        """The backend of the engine loaded last (``inprocess``, ``llama.cpp``, ``openai``)."""
        self._engine: Engine | None = None
        self._server: LlamaServer | None = None
        """The managed llama.cpp server (backend ``llama.cpp``), stopped with its engine."""
        self._closed = False
        self._adapter_failure: str | None = None
        self._revive_after = 0.0
        """When the managed server may be restarted again after it died (monotonic seconds)."""
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """True when completions can be served."""
        return self.state is LoadState.READY and self._engine is not None

    @property
    def remote(self) -> bool:
        """Whether the engine generates outside this process (backend ``llama.cpp``/``openai``)."""
        return self.backend != "inprocess"

    @property
    def background_prefill(self) -> bool:
        """Whether background prefills and speculations may run (prefetch): not on an engine
        with one slot, where they would delay the user's request (llama-cpp-python)."""
        return bool(getattr(self._engine, "supports_background_prefill", True))

    def close(self) -> None:
        """Stop the managed engine process, if any (server shutdown / exit). Idempotent, any
        thread; a load still running fails, later loads refuse to start a server."""
        self._closed = True
        server, self._server = self._server, None
        if server is not None:
            logger.info("stopping the llama.cpp server (pid %s)", server.pid)
            server.stop()

    def _release_engine(self) -> None:
        """Drop the engine before another full load, and stop the server it talked to."""
        self._engine = None
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    # -- loading ---------------------------------------------------------------------------

    def load(self, settings: Settings, progress: ProgressFn | None = None) -> Future[None]:
        """Queue a (re)load for ``settings``; a newer load makes queued older ones no-ops.

        The future fails with :class:`LoadFailure` (user-facing message) on error.
        """
        with self._lock:
            self._generation += 1
            generation = self._generation
            self.state = LoadState.LOADING
            self.error = None
        return self.worker.submit(
            lambda: self._load_job(settings, generation, progress), name="load model"
        )

    def _load_job(self, settings: Settings, generation: int, progress: ProgressFn | None) -> None:
        if generation != self._generation:
            return  # superseded by a newer settings change while queued
        started = time.perf_counter()
        report = progress or (lambda done, total, message: None)
        key = ModelKey.of(settings)
        if self._engine is not None and key == self.key:
            try:
                self._swap_adapter(settings.adapter, report)
            except BaseException as exc:
                # Serve again what worked before; the user still learns why the swap failed.
                message = _user_message(f"adapter '{settings.adapter}'", exc)
                logger.warning("adapter swap failed: %s", message, exc_info=True)
                served = self._restore_adapter(self.adapter)
                with self._lock:
                    if generation == self._generation:
                        self.state = LoadState.READY
                raise LoadFailure(f"{message} (serving: {served or 'the base model'})") from exc
        self._adapter_failure = None
        try:
            if self._engine is None or key != self.key:
                self._release_engine()  # free the old model before loading the new one
                self._full_load(settings, report)
            self._configure_engine(settings)
            report(4, 5, "warming up")
            self._warm_up()
        except BaseException as exc:
            message = _user_message(f"model '{settings.model or 'default'}'", exc)
            logger.error("model load failed: %s", message, exc_info=True)
            with self._lock:
                if self._engine is None:  # nothing is served any more: say so
                    self.key, self.adapter, self.info = None, None, {}
                if generation == self._generation:
                    self.state, self.error = LoadState.FAILED, message
            if self._engine is None:
                self._release_engine()  # a server started for this load stops with it
            raise LoadFailure(message) from exc
        with self._lock:
            self.key = key
            assert self._engine is not None
            self.adapter = self._engine.loaded.adapter  # what is served, not what was asked
            self.load_seconds = time.perf_counter() - started
            if generation == self._generation:
                self.state = LoadState.READY
        report(5, 5, "ready")
        if self._adapter_failure is not None:  # remote backend: the base model is served
            raise LoadFailure(f"{self._adapter_failure} (serving: the base model)")

    def _full_load(self, settings: Settings, report: ProgressFn) -> None:
        self.backend = settings.backend
        if self.remote:
            self._open_remote(settings, report)
            return
        report(0, 5, "importing torch and transformers")
        from model_runtime.loader import load_model
        from model_runtime.spec import default_model

        model = settings.model or default_model()
        report(1, 5, f"loading {model}")

        def loader_progress(done: int, total: int | None, message: str) -> None:
            report(1, 5, message)

        loaded = load_model(
            model,
            adapter=settings.adapter,
            device=settings.device,
            dtype=settings.dtype,
            trust_remote_code=settings.trust_remote_code,
            progress=loader_progress,
            quantize=settings.quantize,
        )
        self.info = _describe(loaded)
        from model_runtime.engine import Engine

        self._engine = Engine(loaded)

    def _open_remote(self, settings: Settings, report: ProgressFn) -> None:
        """Backend ``llama.cpp`` / ``openai``: the engine, then the ``adapter`` setting through
        ``engine.set_adapter`` (a failure keeps the base model served and is reported)."""
        from lsp_server.remote_engine import open_backend
        from model_runtime.loaded import ModelLoadError

        if self._closed:
            raise ModelLoadError("the language server is shutting down")

        def keep(server: LlamaServer) -> None:
            self._server = server

        backend = open_backend(settings, report, keep)
        if self._closed:
            self._release_engine()
            raise ModelLoadError("the language server is shutting down")
        self._engine = backend.engine
        self.info = {**_describe(backend.engine.loaded), **backend.info}
        if settings.adapter:
            report(3, 5, f"loading adapter {settings.adapter} into the engine")
            try:
                backend.engine.set_adapter(settings.adapter)
            except BaseException as exc:
                self._adapter_failure = _user_message(f"adapter '{settings.adapter}'", exc)
                logger.warning("adapter failed: %s", self._adapter_failure, exc_info=True)
                self._revive_server(None)
            self.info = {**self.info, **_describe(backend.engine.loaded)}

    def _revive_server(self, adapter: str | None) -> None:
        """After a failed adapter load: start the managed server again if the failure left it
        stopped (llama-cpp-python loads a LoRA only at start-up, so a swap restarts it)."""
        server, engine = self._server, self._engine
        if server is None or engine is None or server.pid is not None or self._closed:
            return
        loader = getattr(engine, "adapter_loader", None)
        try:
            loader(adapter) if loader is not None else server.start()
        except BaseException:
            logger.error("could not restart the llama.cpp server", exc_info=True)

    def _keep_server_alive(self) -> bool:
        """The managed server died (crash, killed): start it again, same port and adapter, at
        most once per :data:`REVIVE_INTERVAL_S` (a server that cannot start costs no more).
        True when it was started again now."""
        server = self._server
        if server is None or server.pid is not None or self._closed:
            return False
        now = time.monotonic()
        if now < self._revive_after:
            return False
        self._revive_after = now + REVIVE_INTERVAL_S
        logger.warning(
            "the llama.cpp server (exit code %s) is gone; starting it again", server.returncode
        )
        self._revive_server(self.adapter)
        return server.pid is not None

    def _died_during(self, engine: Engine) -> bool:
        """Whether a call that just failed on ``engine`` failed because the managed server
        died under it (its process ends within half a second of the refused connection)."""
        server = self._server
        return (
            server is not None
            and bool(getattr(engine, "last_error", None))
            and server.exited(timeout_s=0.5)
        )

    def _swap_adapter(self, adapter: str | None, report: ProgressFn) -> None:
        assert self._engine is not None
        if _same_path(adapter, self.adapter):
            return
        report(2, 5, f"switching adapter to {adapter or 'none'}")
        self._engine.set_adapter(adapter)
        self.info = {**self.info, **_describe(self._engine.loaded)}

    def _restore_adapter(self, previous: str | None) -> str | None:
        """After a failed swap: serve ``previous`` again if the engine lost it (a swap can fail
        after unloading the old adapter), and record what the engine really serves now."""
        assert self._engine is not None
        if self._engine.loaded.adapter != previous:
            try:
                self._engine.set_adapter(previous)
            except BaseException:
                logger.error("could not restore adapter %s", previous, exc_info=True)
        self._revive_server(self._engine.loaded.adapter)
        served: str | None = self._engine.loaded.adapter
        self.adapter = served
        self.info = {**self.info, **_describe(self._engine.loaded)}
        return served

    def _configure_engine(self, settings: Settings) -> None:
        """Rebuild the (cheap) engine wrapper if engine-level settings changed."""
        from model_runtime.engine import Engine

        assert self._engine is not None
        if self.remote:
            self._configure_remote(settings)
            return
        wanted = (settings.context_tokens, settings.prompt_lookup)
        if self.info.get("_engine_settings") != wanted:
            self._engine = Engine(
                self._engine.loaded,
                context_tokens=settings.context_tokens,
                prompt_lookup=settings.prompt_lookup > 0,
                prompt_lookup_num_tokens=max(1, settings.prompt_lookup),
            )
            self.info["_engine_settings"] = wanted

    def _configure_remote(self, settings: Settings) -> None:
        """A remote engine's prompt budget (prompt lookup is the engine's own business)."""
        from model_runtime.openai_engine import OpenAIEngine

        engine = self._engine
        assert isinstance(engine, OpenAIEngine)
        if self.info.get("_engine_settings") != (settings.context_tokens,):
            self._engine = engine.reconfigured(context_tokens=settings.context_tokens)
            self.info["_engine_settings"] = (settings.context_tokens,)

    def _warm_up(self) -> None:
        """One tiny generation: the first call is much slower than later ones.

        A remote engine that does not answer (down, slow, garbling) does not fail the load:
        its one-line reason (logged once by the engine) becomes :attr:`error` and the host is
        ready all the same, so completions are asked again, and answer, once it is back.
        """
        from model_runtime.engine import CompletionRequest

        assert self._engine is not None
        result = self._engine.complete(
            CompletionRequest("warmup.py", "def main():\n    ", "", max_new_tokens=2)
        )
        self._engine.reset_cache()
        if error := getattr(result, "error", ""):
            self.error = f"{error}; completions are empty until the engine answers"

    def reconfigure(self, settings: Settings) -> Future[None]:
        """Apply engine-level settings (context, prompt lookup) without reloading weights."""

        def job() -> None:
            if self._engine is not None:
                self._configure_engine(settings)

        return self.worker.submit(job, name="configure engine")

    # -- serving ---------------------------------------------------------------------------

    def complete(
        self, request: CompletionRequest, cancel: threading.Event
    ) -> Future[CompletionResult]:
        """Queue one completion; skipped if ``cancel`` is set before it starts."""
        return self.run(
            lambda engine: engine.complete(request, cancel), cancel=cancel, name="complete"
        )

    def run(
        self,
        fn: Callable[[Engine], T],
        *,
        cancel: threading.Event | None = None,
        name: str = "model job",
        background: bool = False,
    ) -> Future[T]:
        """Run ``fn(engine)`` on the model worker: the seam for features needing the model.

        Fails with :class:`LoadFailure` if no model is ready when the job starts.
        ``background``: low priority, pre-empted by any other job (see :class:`ModelWorker`).
        """

        def job() -> T:
            engine = self._engine
            if engine is None or self.state is not LoadState.READY:
                raise LoadFailure(self.error or f"the model is {self.state.value}")
            self._keep_server_alive()
            result = fn(engine)
            revived = self._died_during(engine) and self._keep_server_alive()
            if revived and (cancel is None or not cancel.is_set()):
                result = fn(engine)  # the same request, to the server started again
            return result

        return self.worker.submit(job, cancel=cancel, name=name, background=background)

    def status(self) -> dict[str, Any]:
        """Load state and what is served, for ``codellama.status``."""
        info = {k: v for k, v in self.info.items() if not k.startswith("_")}
        engine = self._engine
        return {
            "state": self.state.value,
            "error": self._error_now(engine),
            **info,
            "backend": self.backend,
            **({"engine": self._engine_status(engine)} if self.remote and engine else {}),
            "loadSeconds": round(self.load_seconds, 2) if self.load_seconds else None,
            "busy": self.worker.busy,
            "currentJob": self.worker.current_job,
            # Read live (a list's length; the worker extends it pass by pass during a prefill).
            "cachedTokens": engine.cached_tokens if engine is not None else 0,
        }

    def _error_now(self, engine: Engine | None) -> str | None:
        """``error``; for a ready remote engine its live health (``None`` once it answers)."""
        if self.remote and engine is not None and self.state is LoadState.READY:
            last: str | None = getattr(engine, "last_error", None)
            return f"{last}; completions are empty until the engine answers" if last else None
        return self.error

    def _engine_status(self, engine: Engine) -> dict[str, Any]:
        """The remote engine's status (endpoint, model, flavor, adapter, health, counters;
        never the key), plus the managed server's pid and log."""
        status: dict[str, Any] = engine.status() if hasattr(engine, "status") else {}
        status["backend"] = self.backend
        if (server := self._server) is not None:
            status["serverPid"] = server.pid
            status["serverLog"] = str(server.log_path) if server.log_path else None
        return status


def _same_path(a: str | None, b: str | None) -> bool:
    """Whether two adapter settings name the same directory (``/x/`` is ``/x``)."""
    return (a is None) == (b is None) and (a is None or Path(a) == Path(b or ""))


def _describe(loaded: Any) -> dict[str, Any]:
    return {
        "model": loaded.model_id,
        "resolvedPath": loaded.resolved_path,
        "device": loaded.device,
        "dtype": loaded.dtype,
        "dtypeReason": getattr(loaded, "dtype_reason", ""),
        "quantize": f"{getattr(loaded, 'quantize', 'none')} ({getattr(loaded, 'quantize_reason', '')})",
        "adapter": loaded.adapter,
        "template": loaded.template.name,
    }
