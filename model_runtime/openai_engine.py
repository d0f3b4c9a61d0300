"""An engine backend that generates through an OpenAI-compatible inference server.

:class:`OpenAIEngine` has the duck-typed surface the language server uses of
:class:`model_runtime.engine.Engine` (it *is* one, for the prompt side): ``complete(request,
cancel)``, ``prefill(request, cancel, chunk=)``, ``prompt_for``, ``set_adapter``,
``reset_cache``, ``cached_tokens``, ``loaded`` (``template``, ``tokenizer``, ``adapter``,
``model_id``, ...), ``last_result``. What differs is where the tokens come from:

- **The prompt is ours, token for token.** It is built by the very code the in-process engine
  runs (:func:`model_runtime.prompt.build_prompt` through ``Engine._build_prompt``: the FIM
  template detected from the local tokenizer, repository context first, line-aligned prompt
  windows so the engine's prefix cache keeps hitting while the user types). Engines that take a
  token-id prompt on ``/v1/completions`` (vLLM, llama.cpp's own C++ ``llama-server``) get the
  ids. llama-cpp-python's server accepts only text (``prompt: str | list[str]``, checked in its
  0.3.36 source): it gets the ids decoded with their special tokens, which it re-tokenizes with
  ``special=True``; each request checks locally that the text re-encodes to the same ids and
  counts the ones that do not (``status()["textPromptMismatches"]``).
- **Stop rules and post-processing are ours** (:mod:`model_runtime.stops`), applied to the
  streamed text as it grows; when a rule fires the stream is closed, which stops the engine.
- **Greedy**: ``temperature 0`` (and ``repeat_penalty 1`` for llama-cpp-python, whose default
  1.1 would change greedy output).
- **Cancellation closes the streaming connection** (:mod:`model_runtime.openai_client`):
  within a few milliseconds on our side; the engine stops at its next check (llama-cpp-python:
  after the token it is computing; a prefill in progress runs to its end there).
- **Failures never raise out of** :meth:`complete`: an unreachable, slow, failing or garbling
  engine gives an empty result with ``stop_reason == "error"`` and ``error`` set, and one
  warning per outage (not per keystroke); the first success after it logs that the engine is
  back. Nothing to reset: every request opens a new connection.
- **Token healing** (:mod:`model_runtime.healing`) as in process, on the engines that take a
  grammar (both llama.cpp servers, :data:`GRAMMAR_FLAVORS`): the prompt ends before the
  removed characters and a GBNF ``grammar`` (:func:`~model_runtime.healing.
  grammar_starting_with`) makes the first tokens re-create them; the streamed text is cut after
  them as in process (``result.healed``). Other engines get the prompt unhealed (the plain
  OpenAI API cannot constrain the first tokens; vLLM's structured outputs could, not wired).
  No prompt-lookup decoding (the engine has its own speculative options).

``cached_tokens`` / ``reused_tokens`` are what the engine's prefix cache holds / reuses *if no
other client used it since*: the longest common prefix with the prompt we sent last (how
llama.cpp's single-slot prefix reuse and vLLM's prefix caching behave).

Thread-safety as :class:`Engine`: one worker thread calls it; others only set ``cancel``.

Size: one class whose methods share the per-request state (flavor, served model, the prompt
sent last, the outage state), plus :func:`remote_loaded`, the 40 lines that give it its
tokenizer; the HTTP side is :mod:`model_runtime.openai_client`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from model_runtime.engine import CompletionRequest, CompletionResult, Engine
from model_runtime.healing import MAX_HEAL_TOKENS, advance, grammar_starting_with
from model_runtime.loaded import LoadedModel, ModelLoadError
from model_runtime.openai_client import EngineUnavailable, OpenAIClient
from model_runtime.prompt import DEFAULT_CONTEXT_TOKENS
from model_runtime.stops import postprocess, truncate_completion

if TYPE_CHECKING:
    from model_runtime.openai_client import Endpoint

__all__ = [
    "FLAVORS", "GRAMMAR_FLAVORS", "EngineUnavailable", "OpenAIEngine", "RemoteResult",
    "remote_loaded",
]  # fmt: skip

log = logging.getLogger(__name__)

FLAVORS = ("auto", "llama-cpp-python", "llama.cpp", "vllm", "openai")
"""Engine kinds: ``auto`` asks ``GET /v1/models`` (its ``owned_by``); ``openai`` is any other
OpenAI-compatible server (text prompts, no extensions)."""
TOKEN_PROMPT_FLAVORS = frozenset({"llama.cpp", "vllm"})
"""Engines whose ``/v1/completions`` accepts a list of token ids as ``prompt``."""
GRAMMAR_FLAVORS = frozenset({"llama-cpp-python", "llama.cpp"})
"""Engines whose ``/v1/completions`` takes a GBNF ``grammar``: token healing works there."""
_OWNED_BY = {"me": "llama-cpp-python", "llamacpp": "llama.cpp", "vllm": "vllm"}


@dataclass
class RemoteResult(CompletionResult):
    """A :class:`CompletionResult` with the engine's failure, if any."""

    error: str = ""
    """One-line reason when ``stop_reason == "error"`` (the text is then empty)."""


class OpenAIEngine(Engine):
    """Completions from an OpenAI-compatible server; prompts and stop rules of our own.

    ``loaded``: a :class:`LoadedModel` for the prompt side (tokenizer, template; ``model`` is
    ``None``), e.g. from :func:`remote_loaded`. ``endpoint``: base URL. ``engine_model``: the
    served model's name (``""``: the engine's first model). The API key is read per request
    from the environment variable named ``api_key_env`` (or given as ``api_key`` by code that
    made it, e.g. :class:`model_runtime.llama_server.LlamaServer`); it is never logged.
    ``adapter_loader``: how ``set_adapter`` reaches an engine without a LoRA API (the managed
    llama.cpp server restarts with a converted adapter); ``None`` there: adapters are refused.
    ``token_healing``: heal where the engine can (:attr:`heals`).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        endpoint: str,
        engine_model: str = "",
        api_key_env: str | None = None,
        api_key: str | None = None,
        flavor: str = "auto",
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        spm: bool = False,
        first_byte_timeout_s: float = 60.0,
        read_timeout_s: float = 15.0,
        total_timeout_s: float = 120.0,
        adapter_loader: Callable[[str | None], None] | None = None,
        token_healing: bool = True,
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {', '.join(FLAVORS)}, got {flavor!r}")
        super().__init__(
            loaded, context_tokens=context_tokens, spm=spm, token_healing=token_healing
        )
        self._key_env = api_key_env
        self._key = api_key
        self.client = OpenAIClient(
            endpoint,
            api_key=self._read_key,
            first_byte_timeout_s=first_byte_timeout_s,
            read_timeout_s=read_timeout_s,
            total_timeout_s=total_timeout_s,
        )
        self.engine_model = engine_model
        self.flavor = flavor
        self.adapter_loader = adapter_loader
        self._base_model = engine_model
        self._served_model = engine_model
        self._resolved: str | None = None if flavor == "auto" else flavor
        self.last_error: str | None = None
        self.counters = {"requests": 0, "errors": 0, "cancelled": 0, "textPromptMismatches": 0}

    # -- configuration -------------------------------------------------------------------------

    @property
    def endpoint(self) -> Endpoint:
        """Where the engine is (no credentials: they are refused in URLs)."""
        return self.client.endpoint

    def _read_key(self) -> str | None:
        if self._key is not None:
            return self._key
        return os.environ.get(self._key_env) if self._key_env else None

    def reconfigured(self, *, context_tokens: int) -> OpenAIEngine:
        """A copy with another prompt budget (what ``ModelHost._configure_engine`` needs)."""
        other = OpenAIEngine.__new__(OpenAIEngine)
        other.__dict__.update(self.__dict__)
        other.context_tokens = context_tokens
        other.reset_cache()
        other.counters = dict(self.counters)
        return other

    def resolved_flavor(self) -> str:
        """The engine kind, asking the engine once when ``flavor`` is ``auto``."""
        if self._resolved is None:
            models = self.client.get_json("/v1/models", timeout_s=self.client.connect_timeout_s)
            data = models.get("data") if isinstance(models, dict) else None
            first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
            self._resolved = _OWNED_BY.get(str(first.get("owned_by", "")), "openai")
            if not self._base_model and first.get("id"):
                self._base_model = str(first["id"])
                if self.loaded.adapter is None:
                    self._served_model = self._base_model
            log.info(
                "engine at %s: %s, model %s", self.endpoint, self._resolved, self._served_model
            )
        return self._resolved

    @property
    def supports_background_prefill(self) -> bool:
        """Whether a background prefill can run without delaying the user's next request:
        not on llama-cpp-python's server (one slot; a prefill in progress is not interruptible)."""
        return (self._resolved or self.flavor) != "llama-cpp-python"

    @property
    def heals(self) -> bool:
        """Whether prompts are token-healed: ``token_healing`` and an engine that takes a
        grammar (``False`` while an ``auto`` flavor is not known yet)."""
        return self.token_healing and (self._resolved or self.flavor) in GRAMMAR_FLAVORS

    def _heal_text(self, prefix: str) -> str:
        if self.token_healing and self._resolved is None:
            try:  # an ``auto`` flavor: learn whether this engine takes a grammar
                self.resolved_flavor()
            except EngineUnavailable:
                return ""  # the request fails with the same reason right after
        return super()._heal_text(prefix) if self.heals else ""

    @property
    def token_prompts(self) -> bool:
        """Whether prompts go as token ids (``False`` until the flavor is known)."""
        return self._resolved in TOKEN_PROMPT_FLAVORS

    # -- the Engine surface --------------------------------------------------------------------

    def set_adapter(self, path: str | None) -> None:
        """Serve ``path`` (an adapter) or the base model through the engine.

        vLLM: ``POST /v1/load_lora_adapter`` (the server needs ``--enable-lora`` and
        ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``; ``path`` must be readable by it), requests then
        name the adapter as their model. Other engines go through ``adapter_loader``; without
        one, an adapter raises :class:`ModelLoadError` and the base model stays served.
        """
        self.reset_cache()
        if path is None and self.loaded.adapter is None:
            return
        try:
            flavor = self.resolved_flavor()
            if flavor == "vllm":
                self._vllm_adapter(path)
            elif self.adapter_loader is not None:
                self.adapter_loader(path)
            elif path is not None:
                raise ModelLoadError(
                    f"the {flavor} engine at {self.endpoint} cannot load adapters at run time; "
                    "serve the adapter from the engine itself or use backend 'inprocess'"
                )
        except EngineUnavailable as exc:
            raise ModelLoadError(f"adapter {path or 'none'}: {exc}") from None
        self._loaded = dataclasses.replace(self._loaded, adapter=path)

    def _vllm_adapter(self, path: str | None) -> None:
        if path is None:
            self._served_model = self._base_model
            return
        name = "codellama-" + hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]
        try:
            self.client.post_text("/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})
        except EngineUnavailable as exc:
            if "already been loaded" not in str(exc):  # vLLM's 400 for a name it has: fine
                raise
        self._served_model = name

    def prefill(
        self,
        request: CompletionRequest,
        cancel: threading.Event | None = None,
        *,
        chunk: int | None = None,
    ) -> RemoteResult:
        """Warm the engine's prefix cache with this prompt (one generated token, discarded).

        ``chunk`` is ignored (the engine chooses its batch size). ``stop_reason``: ``prefill``,
        ``cancelled``, ``empty`` or ``error``.
        """
        started = time.perf_counter()
        ids = self._build_prompt(self._prompt_request(request)).input_ids
        result = RemoteResult(text="", tokens=0, latency_s=0.0, cancelled=False)
        result.prompt_tokens = len(ids)
        result.reused_tokens = self._common_prefix(ids)
        reason = "prefill"
        if cancel is not None and cancel.is_set():
            reason = "cancelled"
        elif not ids:
            reason = "empty"
        else:
            try:
                body = self._payload(ids, 1, stream=False)
                answer = self.client.post_json("/v1/completions", body, cancel=cancel)
                reason = "cancelled" if answer is None else "prefill"
                self._cache_ids = list(ids)
                self._ok()
            except EngineUnavailable as exc:
                reason = "error"
                result.error = self._failed(exc)
        self._end_prefill(result, started, reason)
        return result

    def complete(
        self, request: CompletionRequest, cancel: threading.Event | None = None
    ) -> RemoteResult:
        """Stream a completion; returns within milliseconds after ``cancel`` is set."""
        started = time.perf_counter()
        multiline = request.wants_multiline()
        heal = self._heal_text(request.prefix)
        ids = self._build_prompt(self._prompt_request(request, heal)).input_ids
        result = RemoteResult(
            text="", tokens=0, latency_s=0.0, cancelled=False, prompt_tokens=len(ids),
            multiline=multiline, healed=heal,
        )  # fmt: skip
        if cancel is not None and cancel.is_set():
            return self._done(result, started, "cancelled")
        if not ids or request.max_new_tokens <= 0:
            return self._done(result, started, "empty")
        result.reused_tokens = self._common_prefix(ids)
        self.counters["requests"] += 1
        try:
            # As in process, the tokens re-creating the healed text are not counted.
            budget = request.max_new_tokens + (MAX_HEAL_TOKENS if heal else 0)
            body = self._payload(ids, budget, stream=True, heal=heal)
            self._cache_ids = list(ids)
            self._stream(body, request, cancel, result, started)
            self._ok()
        except EngineUnavailable as exc:
            result.error = self._failed(exc)
            result.text = result.raw_text = ""
            return self._done(result, started, "error")
        if cancel is not None and cancel.is_set():
            self.counters["cancelled"] += 1
            result.text = ""
            return self._done(result, started, "cancelled")
        return self._done(result, started, result.stop_reason)

    def _done(self, result: RemoteResult, started: float, reason: str) -> RemoteResult:
        self._finish(result, started, reason)
        return result

    # -- requests ------------------------------------------------------------------------------

    def _payload(
        self, ids: list[int], max_tokens: int, *, stream: bool, heal: str = ""
    ) -> dict[str, Any]:
        flavor = self.resolved_flavor()
        body: dict[str, Any] = {
            "prompt": list(ids) if self.token_prompts else self._text_prompt(ids),
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "top_p": 1.0,
            "stream": stream,
        }
        if self._served_model:
            body["model"] = self._served_model
        stop_ids = sorted(self.loaded.template.stop_ids)
        if flavor == "llama-cpp-python":
            body.update(repeat_penalty=1.0, top_k=1, min_p=0.0)
        elif flavor == "llama.cpp":
            body.update(cache_prompt=True, repeat_penalty=1.0, top_k=1, min_p=0.0)
        elif flavor == "vllm":
            body.update(stop_token_ids=stop_ids, skip_special_tokens=True)
            if stream:
                body["stream_options"] = {"include_usage": True}
        if heal:
            body["grammar"] = grammar_starting_with(heal)
        return body

    def _text_prompt(self, ids: list[int]) -> str:
        """``ids`` as text the engine re-tokenizes (with special tokens) into the same ids."""
        tokenizer = self.loaded.tokenizer
        bos = self.loaded.template.bos_id
        body = ids[1:] if bos is not None and ids and ids[0] == bos else ids  # engines add BOS
        text: str = tokenizer.decode(
            body, skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        if tokenizer.encode(text, add_special_tokens=False) != body:
            self.counters["textPromptMismatches"] += 1
            log.debug("text prompt does not re-tokenize to the same %d ids", len(body))
        return text

    def _stream(
        self,
        body: dict[str, Any],
        request: CompletionRequest,
        cancel: threading.Event | None,
        result: RemoteResult,
        started: float,
    ) -> None:
        text = ""
        completion: str | None = None if result.healed else ""
        with self.client.stream("/v1/completions", body, cancel) as events:
            for event in events:
                usage = event.get("usage")
                if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                    result.tokens = usage["completion_tokens"]
                choice = _choice(event, self.endpoint)
                if choice is None:
                    continue  # vLLM's final usage-only event
                piece = choice.get("text") or ""
                if not isinstance(piece, str):
                    raise EngineUnavailable(f"engine at {self.endpoint} sent a non-text chunk")
                if piece:
                    if not result.raw_text:
                        result.first_token_s = time.perf_counter() - started
                    result.tokens += 1
                    result.forward_passes += 1
                    if completion is None:
                        result.heal_tokens += 1  # a step re-creating the healed characters
                    result.raw_text += piece
                    completion = self._healed_body(result)
                    if completion is not None:
                        text, stopped = truncate_completion(
                            completion, request.prefix, multiline=result.multiline,
                            suffix=request.suffix,
                        )  # fmt: skip
                        if stopped:
                            result.stop_reason = "stop_rule"
                            break  # leaving the with block closes the stream: the engine stops
                finish = choice.get("finish_reason")
                if finish:
                    result.stop_reason = "max_tokens" if finish == "length" else "eos"
        if not result.stop_reason:
            # [DONE] without a finish reason: llama-cpp-python's server ends a stream that way
            # when another request interrupts it (interrupt_requests). The text is cut short.
            result.stop_reason, text = "interrupted", ""
        result.text = postprocess(text, request.prefix, request.suffix)

    @staticmethod
    def _healed_body(result: RemoteResult) -> str | None:
        """The completion in ``raw_text`` after the healed characters (``None`` while they are
        not re-created yet); the engine's grammar keeps ``raw_text`` starting with them."""
        if not result.healed:
            return result.raw_text
        return advance(result.healed, result.raw_text)[1]

    def _common_prefix(self, ids: list[int]) -> int:
        cached = self._cache_ids
        limit = min(len(ids), len(cached))
        common = 0
        while common < limit and cached[common] == ids[common]:
            common += 1
        return common

    # -- health --------------------------------------------------------------------------------

    def _failed(self, exc: EngineUnavailable) -> str:
        message = str(exc)
        self.counters["errors"] += 1
        self.reset_cache()
        if self._resolved is not None and self.flavor == "auto":
            self._resolved = None  # the engine may come back as another server
        if message != self.last_error:
            log.warning("%s; completions are empty until it answers again", message)
        else:
            log.debug("%s (again)", message)
        self.last_error = message
        return message

    def _ok(self) -> None:
        if self.last_error is not None:
            log.info("engine at %s answers again", self.endpoint)
            self.last_error = None

    def status(self) -> dict[str, Any]:
        """For ``codellama.status``: backend, endpoint, engine model, health and counters."""
        return {
            "backend": "openai",
            "endpoint": str(self.endpoint),
            "engineModel": self._served_model or self.engine_model,
            "flavor": self._resolved or self.flavor,
            "tokenPrompts": self.token_prompts,
            "tokenHealing": self.heals,
            "adapter": self.loaded.adapter,
            "engineError": self.last_error,
            **self.counters,
        }


def _choice(event: dict[str, Any], endpoint: Endpoint) -> dict[str, Any] | None:
    choices = event.get("choices")
    if choices == [] and "usage" in event:
        return None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise EngineUnavailable(f"engine at {endpoint} sent an event without choices")
    choice: dict[str, Any] = choices[0]
    return choice


def remote_loaded(
    model: str, *, tokenizer: Any = None, trust_remote_code: bool = False
) -> LoadedModel:
    """The prompt side of a remote engine serving ``model``: its tokenizer and FIM template.

    ``model``: the same spec as for in-process serving (``bundled:<name>``, a hub id or a
    local directory) naming the weights the engine serves, so prompts are built with the
    engine's own vocabulary. A bundled model's tokenizer is read from its converted checkpoint
    when there is one, else straight from its GGUF (no weight conversion); so is that of a
    ``model`` that is a path to a ``.gguf`` file. ``tokenizer``:
    use this one instead (tests).
    """
    from model_runtime.fim import detect_template

    if tokenizer is None:
        tokenizer = _load_tokenizer(model, trust_remote_code)
    return LoadedModel(
        model=None,
        tokenizer=tokenizer,
        template=detect_template(tokenizer),
        model_id=model,
        adapter=None,
        device="remote",
        dtype="engine",
        dtype_reason="the engine chooses",
        base_tokenizer=tokenizer,
        trust_remote_code=trust_remote_code,
    )


def _load_tokenizer(model: str, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    from model_runtime.spec import bundled_cache_path, bundled_gguf_path, is_bundled

    if is_bundled(model):
        name = model.removeprefix("bundled:")
        converted = bundled_cache_path(name)
        if (converted / "tokenizer.json").is_file():
            return AutoTokenizer.from_pretrained(str(converted))
        gguf = bundled_gguf_path(name)
        return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    path = os.path.expanduser(model)
    if path.lower().endswith(".gguf") and os.path.isfile(path):  # the GGUF llama.cpp serves
        directory, name = os.path.split(path)
        return AutoTokenizer.from_pretrained(directory or ".", gguf_file=name)
    return AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
