"""A llama.cpp server we start and own: llama-cpp-python's OpenAI-compatible server on a GGUF.

``LlamaServer(gguf).start()`` runs ``python -m llama_cpp.server --model X.gguf --host
127.0.0.1 --port <free port>`` (the package is built by ``scripts/build_llama_cpp.sh``),
waits until ``GET /v1/models`` answers, and gives an :meth:`LlamaServer.engine` that talks to
it. It serves the bundled GGUF directly (:func:`model_runtime.spec.bundled_gguf_path`): no
transformers conversion, the engine's Q4_K_M weights.

- **Only we can use it**: it listens on 127.0.0.1 and requires a random bearer token, handed
  to the child in its environment (``API_KEY``, read by its pydantic settings), not on the
  command line where ``ps`` would show it.
- **It dies with us**: its own process group (killed as a group by :meth:`stop`, also from an
  ``atexit`` hook), and a watchdog in the child that exits when its stdin pipe, whose other
  end only we hold, reaches EOF: that happens however we die, ``kill -9`` included, and unlike
  ``PR_SET_PDEATHSIG`` it does not fire when merely the *thread* that started it ends.
- **LoRA**: llama-cpp-python loads one LoRA GGUF at start-up (``--lora_path``), with no
  run-time adapter API; :meth:`restart` with ``lora=`` starts it again with the adapter (a few
  seconds for the 0.5B model). ``engine.set_adapter(<PEFT adapter dir>)`` converts the adapter
  first with llama.cpp's ``convert_lora_to_gguf.py`` (:func:`model_runtime.gguf_lora.
  convert_adapter`, cached by content), for the base named by ``base_config`` (default: the
  bundled model whose GGUF this is, else the GGUF's own metadata). A conversion or restart that
  fails leaves the previous adapter served.

Its stdout/stderr go to ``log_path`` (with ``verbose``, llama.cpp's per-request timings and
prefix-cache lines: what the engine-side measurements read).

Size: one class owning the child process (start, readiness, restart with an adapter, the kill
paths) plus :func:`tokens_after_cancel`, the engine-side cancel probe that reads its log.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from model_runtime.openai_client import EngineUnavailable, OpenAIClient

if TYPE_CHECKING:
    from model_runtime.loaded import LoadedModel
    from model_runtime.openai_engine import OpenAIEngine

__all__ = [
    "COUNTING_PROMPT",
    "LlamaServer",
    "LlamaServerError",
    "llama_cpp_available",
    "tokens_after_cancel",
]

_CHILD = r"""
import os, runpy, sys, threading

def _watch():
    try:
        while sys.stdin.buffer.read(1 << 16):
            pass
    finally:
        os._exit(0)  # our parent is gone: its end of the stdin pipe closed

threading.Thread(target=_watch, name="parent-watch", daemon=True).start()
sys.argv = ["llama_cpp.server", *sys.argv[1:]]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""
"""The child's entry point: the parent watchdog, then llama-cpp-python's own ``__main__``."""

_RUNNING: weakref.WeakSet[LlamaServer] = weakref.WeakSet()


class LlamaServerError(RuntimeError):
    """The server could not be started; the message says why (with the end of its log)."""


def llama_cpp_available() -> bool:
    """Whether ``llama_cpp.server`` can be imported (``scripts/build_llama_cpp.sh`` installs it)."""
    return (
        importlib.util.find_spec("llama_cpp") is not None
        and importlib.util.find_spec("uvicorn") is not None
        and importlib.util.find_spec("sse_starlette") is not None
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class LlamaServer:
    """One managed ``llama_cpp.server`` child process (start, wait ready, restart, stop).

    ``n_threads``: decode threads (default: every CPU; llama-cpp-python's own default is
    half). ``n_ctx``: context window (our prompts are ≤ 1536 + 64 tokens by default).
    ``alias``: the model name it serves (requests name it). ``extra_args``: more
    ``--name value`` flags of ``python -m llama_cpp.server --help``. ``base_config``: the base
    model PEFT adapters are converted for (a ``bundled:<name>`` spec, a directory with
    ``config.json`` or a GGUF; ``None``: derived from ``gguf``). ``last_convert_s`` /
    ``last_restart_s``: how long the last adapter conversion / restart took.
    """

    def __init__(
        self,
        gguf: str | os.PathLike[str],
        *,
        lora: str | os.PathLike[str] | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        alias: str = "codellama",
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        verbose: bool = True,
        startup_timeout_s: float = 120.0,
        python: str = sys.executable,
        extra_args: tuple[str, ...] = (),
        base_config: str | os.PathLike[str] | None = None,
    ) -> None:
        self.gguf = Path(gguf)
        self.base_config = base_config
        self.last_convert_s: float | None = None
        self.last_restart_s: float | None = None
        self.lora = Path(lora) if lora is not None else None
        self.n_ctx = n_ctx
        self.n_threads = n_threads or os.cpu_count() or 1
        self.alias = alias
        self.host = host
        self.requested_port = port
        self.port = 0
        self.verbose = verbose
        self.startup_timeout_s = startup_timeout_s
        self.python = python
        self.extra_args = extra_args
        self.log_path = Path(log_path) if log_path is not None else None
        self._token = secrets.token_urlsafe(24)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """Base URL of the running server."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def returncode(self) -> int | None:
        """The child's exit code once it ended (``None`` while it runs or before a start)."""
        proc = self._proc
        return proc.poll() if proc is not None else None

    def exited(self, timeout_s: float = 0.0) -> bool:
        """Whether the started child has ended, waiting up to ``timeout_s`` for it to end
        (``False`` when it was never started or was stopped by :meth:`stop`)."""
        proc = self._proc
        if proc is None:
            return False
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def command(self) -> list[str]:
        """The child's command line (no secret in it)."""
        args = [
            self.python, "-c", _CHILD,
            "--model", str(self.gguf),
            "--model_alias", self.alias,
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads),
            "--interrupt_requests", "True",
            "--verbose", str(self.verbose),
        ]  # fmt: skip
        if self.lora is not None:
            args += ["--lora_path", str(self.lora)]
        return [*args, *self.extra_args]

    def start(self) -> LlamaServer:
        """Start the child and wait until it serves; raises :class:`LlamaServerError`."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                return self
            if not llama_cpp_available():
                raise LlamaServerError(
                    "llama-cpp-python[server] is not installed: run scripts/build_llama_cpp.sh"
                )
            if not self.gguf.is_file():
                raise LlamaServerError(f"GGUF {self.gguf} does not exist")
            if self.lora is not None and not self.lora.is_file():
                raise LlamaServerError(f"LoRA GGUF {self.lora} does not exist")
            # The same port across restarts: engines made by engine() keep its endpoint.
            self.port = self.port or self.requested_port or free_port(self.host)
            self._open_log()
            env = {**os.environ, "API_KEY": self._token, "PYTHONSAFEPATH": "1"}
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.PIPE,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: stop() kills the whole group
            )
            _RUNNING.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _open_log(self) -> None:
        if self._log is not None:
            self._log.close()
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="llama-server-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the child

    def _wait_ready(self) -> None:
        client = self.client(read_timeout_s=2.0)
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = proc.returncode if proc is not None else None
                raise LlamaServerError(
                    f"llama.cpp server exited with code {code} while starting:\n{self.log_tail()}"
                )
            try:
                client.get_json("/v1/models", timeout_s=2.0)
                return
            except EngineUnavailable:
                pass
            if time.monotonic() > deadline:
                raise LlamaServerError(
                    f"llama.cpp server not ready after {self.startup_timeout_s:.0f} s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the child's process group (SIGTERM, then SIGKILL after ``timeout_s``)."""
        with self._lock:
            proc, self._proc = self._proc, None
            _RUNNING.discard(self)
            if proc is not None:
                _kill_group(proc, timeout_s)
                if proc.stdin is not None:
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
            if self._log is not None:
                self._log.close()
                self._log = None

    def restart(self, *, lora: str | os.PathLike[str] | None = None) -> LlamaServer:
        """Start again serving ``lora`` (a LoRA GGUF) or the plain model (``None``)."""
        self.stop()
        self.lora = Path(lora) if lora is not None else None
        return self.start()

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients -------------------------------------------------------------------------------

    def client(self, **timeouts: float) -> OpenAIClient:
        """An :class:`OpenAIClient` with this server's token."""
        token = self._token
        return OpenAIClient(self.endpoint, api_key=lambda: token, **timeouts)

    def engine(self, loaded: LoadedModel, **options: Any) -> OpenAIEngine:
        """An :class:`~model_runtime.openai_engine.OpenAIEngine` on this server.

        ``set_adapter`` then restarts the server with the adapter as a LoRA GGUF: a ``.gguf``
        file as it is, a PEFT adapter directory converted first (see the module docstring).
        """
        from model_runtime.openai_engine import OpenAIEngine

        engine = OpenAIEngine(
            loaded,
            endpoint=self.endpoint,
            engine_model=self.alias,
            api_key=self._token,
            flavor="llama-cpp-python",
            adapter_loader=self._load_adapter,
            **options,
        )
        return engine

    def _load_adapter(self, path: str | None) -> None:
        from model_runtime.gguf_lora import LoraConversionError, convert_adapter
        from model_runtime.loaded import ModelLoadError

        lora: Path | None = None
        if path is not None and Path(path).is_dir():
            started = time.monotonic()
            try:
                lora = convert_adapter(path, self._adapter_base())
            except LoraConversionError as exc:
                raise ModelLoadError(str(exc)) from None
            self.last_convert_s = round(time.monotonic() - started, 2)
        elif path is not None:
            lora = Path(path)
            if lora.suffix != ".gguf" or not lora.is_file():
                raise ModelLoadError(
                    f"adapter {path}: give a PEFT adapter directory or a LoRA .gguf file"
                )
        previous = self.lora
        started = time.monotonic()
        try:
            self.restart(lora=lora)
        except LlamaServerError as exc:
            with contextlib.suppress(LlamaServerError):
                self.restart(lora=previous)  # keep serving what was served
            raise ModelLoadError(str(exc)) from None
        self.last_restart_s = round(time.monotonic() - started, 2)

    def _adapter_base(self) -> str | os.PathLike[str]:
        """The base model adapters are converted for: ``base_config``, else the bundled model
        whose GGUF is served, else the served GGUF itself."""
        if self.base_config is not None:
            return self.base_config
        from model_runtime.spec import BUNDLED_MODELS

        for model in BUNDLED_MODELS.values():
            if self.gguf.name == model.gguf_name:
                return model.spec
        return self.gguf

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the child's log."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        with open(self.log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])


def _kill_group(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    if proc.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout_s)
            return
        except subprocess.TimeoutExpired:
            continue


COUNTING_PROMPT = "numbers = [\n" + "".join(f"    {n},\n" for n in range(1, 9))
"""A prompt whose greedy continuation runs to ``max_tokens`` (the model keeps counting)."""
_PREFIX_HIT = re.compile(r"Llama\.generate: (\d+) prefix-match hit")


def tokens_after_cancel(
    server: LlamaServer, prompt: str = COUNTING_PROMPT, *, after: int = 4, new: int = 48
) -> int:
    """Engine side: tokens llama.cpp evaluated after we closed its stream at token ``after``.

    A diagnostic for tests and benchmarks (needs ``verbose``). A greedy reference run gives the
    continuation the engine would produce; after a streamed request is cancelled, a probe
    prompt = prompt + the whole reference makes llama.cpp log how much of it its KV cache
    already holds ("N prefix-match hit"): the prompt plus every token it evaluated for the
    cancelled request. The ``after``-th token was sampled but not yet evaluated when we
    closed. (Without a cancel the same probe counts all ``new - 1`` evaluated tokens.)
    """
    client = server.client(first_byte_timeout_s=600.0)
    body = {"prompt": prompt, "max_tokens": new, "temperature": 0.0, "repeat_penalty": 1.0}
    reference = client.post_json("/v1/completions", body)["choices"][0]["text"]
    prompt_ids = client.post_json("/extras/tokenize", {"input": prompt})["tokens"]
    full_ids = client.post_json("/extras/tokenize", {"input": prompt + reference})["tokens"]
    if len(full_ids) - len(prompt_ids) < new - 1:
        raise LlamaServerError(f"the reference stopped early ({reference!r}): use another prompt")
    cancel = threading.Event()
    received = 0
    with client.stream("/v1/completions", {**body, "stream": True}, cancel) as events:
        for _event in events:
            received += 1
            if received == after:
                cancel.set()
    time.sleep(1.0)  # let the engine notice (and run whatever it still runs)
    assert server.log_path is not None
    before = server.log_path.stat().st_size
    client.post_json("/v1/completions", {**body, "prompt": prompt + reference, "max_tokens": 1})
    with open(server.log_path, "rb") as handle:
        handle.seek(before)
        hits = _PREFIX_HIT.findall(handle.read().decode("utf-8", "replace"))
    if not hits:
        raise LlamaServerError("no prefix-match line in the llama.cpp log (verbose off?)")
    return int(hits[-1]) - len(prompt_ids) - (after - 1)


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop(timeout_s=2.0)
