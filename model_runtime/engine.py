"""The generation engine: synchronous, greedy, cancellable, with KV prefix reuse.

One decode loop of our own (not ``generate``) so that we can

- reuse the longest common token prefix of the last prompt's KV cache
  (:mod:`model_runtime.kv_cache`): only the new tail is prefilled;
- stop within one decoder layer once the request's ``threading.Event`` is set
  (:mod:`model_runtime.cancellation`); the cache keeps the complete passes, so a cancelled
  request's prefill still warms the cache for the request that superseded it;
- apply the stop rules of :mod:`model_runtime.stops` to the decoded text as it grows;
- optionally verify prompt-lookup drafts (:func:`~model_runtime.token_choice.draft_tokens`):
  exactly greedy, only faster when the completion copies context;
- heal tokens (:mod:`model_runtime.healing`): the last unstable token(s) of the *document*
  prefix are removed before the prompt is built and the first generated tokens are constrained
  to re-create them (:class:`~model_runtime.token_choice.HealedPicker`); the removed text is
  ``CompletionResult.healed`` (``raw_text`` starts with it, ``text`` does not).

Prompts come from :mod:`model_runtime.prompt_window` (budgeted, anchored windows); the request
and result types from :mod:`model_runtime.completion_types` (re-exported here).

Thread-safety: an :class:`Engine` is NOT thread-safe. Call :meth:`Engine.complete`,
:meth:`Engine.set_adapter` and :meth:`Engine.reset_cache` from one dedicated worker thread
(the server's model thread); other threads may only set the ``cancel`` event they passed in.
The KV cache, the tokenizer and the model are shared between calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from model_runtime.cancellation import Cancelled, LayerCancel
from model_runtime.completion_types import CompletionRequest, CompletionResult
from model_runtime.healing import advance
from model_runtime.kv_cache import PrefixCache
from model_runtime.prompt import DEFAULT_CONTEXT_TOKENS, Prompt
from model_runtime.prompt_window import (
    ANCHOR_SLACK_LINES,
    ANCHOR_TOKENS_PER_LINE,
    Sticky,
    anchor_lines,
    anchor_window,
    budgeted_prompt,
    describe_prompt,
)
from model_runtime.stops import postprocess, truncate_completion
from model_runtime.token_choice import HealedPicker, draft_tokens, heal_text

if TYPE_CHECKING:
    from model_runtime.loader import LoadedModel

__all__ = [
    "ANCHOR_SLACK_LINES", "ANCHOR_TOKENS_PER_LINE", "CompletionRequest", "CompletionResult",
    "Engine", "anchor_lines",
]  # fmt: skip

log = logging.getLogger(__name__)


class Engine:
    """Greedy completion engine around a :class:`LoadedModel`. Use from one thread only.

    ``kv_reuse``: keep the KV cache between requests (prefix reuse). ``prompt_lookup``: verify
    n-gram drafts of up to ``prompt_lookup_num_tokens`` tokens copied from the context.
    ``spm``: suffix-prefix-middle prompts (better cache reuse while typing at the end of the
    prefix, for models trained with SPM). ``prefill_chunk``: prompt tokens per forward pass
    during prefill. ``token_healing``: back the prompt off to a stable token boundary before
    the cursor and re-generate the removed characters (see above).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        context_tokens: int = DEFAULT_CONTEXT_TOKENS,
        prompt_lookup: bool = False,
        prompt_lookup_num_tokens: int = 10,
        kv_reuse: bool = True,
        spm: bool = False,
        prefill_chunk: int = 512,
        token_healing: bool = True,
    ) -> None:
        if context_tokens < 16:
            raise ValueError(f"context_tokens must be at least 16, got {context_tokens}")
        if prefill_chunk < 1 or prompt_lookup_num_tokens < 1:
            raise ValueError("prefill_chunk and prompt_lookup_num_tokens must be positive")
        self._loaded = loaded
        self.context_tokens = context_tokens
        self.prompt_lookup = prompt_lookup
        self.prompt_lookup_num_tokens = prompt_lookup_num_tokens
        self.kv_reuse = kv_reuse
        self.spm = spm
        self.prefill_chunk = prefill_chunk
        self.token_healing = token_healing
        self._healer = HealedPicker()
        self._kv = PrefixCache()
        self._layers = LayerCancel()
        self._sticky: Sticky | None = None
        self.last_result: CompletionResult | None = None

    @property
    def loaded(self) -> LoadedModel:
        """The model currently served (changes after :meth:`set_adapter`)."""
        return self._loaded

    @property
    def cached_tokens(self) -> int:
        """Tokens currently held in the reusable KV cache."""
        return len(self._cache_ids)

    @property
    def _cache(self) -> Any:  # the ``transformers`` KV cache (None before the first prompt)
        return self._kv.cache

    @property
    def _cache_ids(self) -> list[int]:  # the prompt token ids the KV cache holds
        return self._kv.ids

    @_cache_ids.setter
    def _cache_ids(self, ids: list[int]) -> None:  # remote engines track their server's cache
        self._kv.ids = ids

    def reset_cache(self) -> None:
        """Forget the KV cache kept for prefix reuse."""
        self._kv.reset()
        self._sticky = None

    def set_adapter(self, path: str | None) -> None:
        """Serve ``path`` (a PEFT adapter dir) or the plain base model (``None``).

        On failure the error is raised and the engine serves either the previous state (bad
        directory, nothing touched) or the plain base model (the adapter did not fit).
        """
        from model_runtime.loader import ModelLoadError, apply_adapter

        self.reset_cache()
        self._healer.clear()
        try:
            self._loaded = apply_adapter(self._loaded, path)
        except ModelLoadError as exc:
            fallback = getattr(exc, "fallback", None)
            if fallback is not None:
                self._loaded = fallback
            raise

    def prompt_for(self, request: CompletionRequest) -> Prompt:
        """The exact prompt :meth:`complete` would prefill for ``request`` (token healing
        included), e.g. to run ``model.generate`` on the same ids in a benchmark."""
        sticky = self._sticky
        try:
            return self._build_prompt(self._prompt_request(request))
        finally:
            self._sticky = sticky

    def _prompt_request(
        self, request: CompletionRequest, heal: str | None = None
    ) -> CompletionRequest:
        """``request`` with the healed characters removed from the end of its prefix."""
        heal = self._heal_text(request.prefix) if heal is None else heal
        return (
            dataclasses.replace(request, prefix=request.prefix[: -len(heal)]) if heal else request
        )

    def prefill(
        self,
        request: CompletionRequest,
        cancel: threading.Event | None = None,
        *,
        chunk: int | None = None,
    ) -> CompletionResult:
        """Prefill the KV cache with the prompt :meth:`complete` would build, generate nothing.

        Background prefetch: a later :meth:`complete` at (or near) this cursor reuses the
        cached prefix. Stops within one decoder layer once ``cancel`` is set; the passes that
        completed stay cached (so a cancelled prefill still warms the cache). ``chunk``: prompt
        tokens per forward pass (smaller chunks lose less work to a cancel). The result has
        ``stop_reason`` ``prefill`` | ``cancelled`` | ``empty``; ``tokens`` is 0 and
        ``reused_tokens`` counts what was cached before; :attr:`cached_tokens` what is now.
        """
        started = time.perf_counter()
        ids = self.prompt_for(request).input_ids
        result = CompletionResult(
            text="", tokens=0, latency_s=0.0, cancelled=False, prompt_tokens=len(ids)
        )
        result.reused_tokens = self._reuse_length(ids) if ids else 0
        reason = "empty" if not ids else "prefill"
        if cancel is not None and cancel.is_set():
            reason = "cancelled"
        elif ids:
            with self._model_passes(cancel) as cancelled:
                self._prefill(ids, cancel, chunk or self.prefill_chunk)
            reason = "cancelled" if cancelled else reason
        self._end_prefill(result, started, reason)
        return result

    def complete(
        self, request: CompletionRequest, cancel: threading.Event | None = None
    ) -> CompletionResult:
        """Generate a completion; returns within one decode step after ``cancel`` is set."""
        started = time.perf_counter()
        multiline = request.wants_multiline()
        heal = self._heal_text(request.prefix)
        prompt = self._build_prompt(self._prompt_request(request, heal))
        ids = prompt.input_ids
        result = CompletionResult(
            text="", tokens=0, latency_s=0.0, cancelled=False, prompt_tokens=len(ids),
            multiline=multiline, healed=heal,
        )  # fmt: skip
        if cancel is not None and cancel.is_set():
            return self._finish(result, started, "cancelled")
        if not ids or request.max_new_tokens <= 0:
            return self._finish(result, started, "empty")  # e.g. empty document, no BOS token

        with self._model_passes(cancel) as cancelled:
            self._generate(ids, request, multiline, cancel, result, started)
        if cancelled:
            result.text = ""
            return self._finish(result, started, "cancelled")
        return self._finish(result, started, result.stop_reason)

    @contextlib.contextmanager
    def _model_passes(self, cancel: threading.Event | None) -> Iterator[list[bool]]:
        """Forward passes under ``inference_mode`` that ``cancel`` stops within one layer.

        Yields a list that is true (``[True]``) after the block when it was cancelled: the cache
        is then trimmed back to the last complete pass (the interrupted pass may have filled
        some layers already). Any other error drops the cache (it may be half-written)."""
        import torch

        self._layers.install(self._loaded.model)
        self._layers.event = cancel
        cancelled: list[bool] = []
        try:
            with torch.inference_mode():
                yield cancelled
        except Cancelled:
            self._kv.trim()
            cancelled.append(True)
        except BaseException:
            self.reset_cache()
            raise
        finally:
            self._layers.event = None

    def _build_prompt(self, request: CompletionRequest) -> Prompt:
        """The token-budgeted prompt; a cut window starts at a stable, line-aligned anchor
        (:mod:`model_runtime.prompt_window`). The repository context block comes first."""
        loaded = self._loaded
        budget = request.context_tokens or self.context_tokens
        spm = self.spm or loaded.fim_order == "spm"

        def build(prefix: str) -> Prompt:
            return budgeted_prompt(loaded, request, prefix, budget=budget, spm=spm)

        prompt = build(request.prefix)
        if self.kv_reuse:
            anchored, self._sticky = anchor_window(request, prompt, build, self._sticky, budget)
            prompt = anchored or prompt
        if log.isEnabledFor(logging.DEBUG):
            log.debug("prompt for %s: %s", request.path, describe_prompt(prompt, loaded.tokenizer))
        return prompt

    def _finish(self, result: CompletionResult, started: float, reason: str) -> CompletionResult:
        result.stop_reason = reason
        result.cancelled = reason == "cancelled"
        result.latency_s = time.perf_counter() - started
        self.last_result = result
        return result

    @staticmethod
    def _end_prefill(result: CompletionResult, started: float, reason: str) -> None:
        """Close a prefill's ``result`` (every backend's): nothing was generated, so the first
        token's time is the whole latency; ``last_result`` stays the last completion's."""
        result.stop_reason = reason
        result.cancelled = reason == "cancelled"
        result.latency_s = result.first_token_s = time.perf_counter() - started

    def _generate(
        self,
        ids: list[int],
        request: CompletionRequest,
        multiline: bool,
        cancel: threading.Event | None,
        result: CompletionResult,
        started: float,
    ) -> None:
        loaded = self._loaded
        template = loaded.template
        stop_ids = template.stop_ids
        heal = result.healed
        remaining = heal
        cut = len(heal)  # raw_text[cut:] is the completion once healing is done
        logits, result.reused_tokens = self._prefill(ids, cancel)
        result.first_token_s = time.perf_counter() - started
        pending = [self._pick(logits, remaining)]
        generated: list[int] = []
        # Tokens spent re-creating the healed characters do not count against max_new_tokens:
        # the user asked for that many tokens of completion, and a long heal (an indented
        # ``return `` is several tokens) would otherwise leave nothing for it. They are bounded
        # by the healed text's length (at most 64 characters).
        heal_steps = 0
        text = ""
        while True:
            for token in pending:
                if token in stop_ids:
                    result.stop_reason = "eos"
                    break
                generated.append(token)
                heal_steps += bool(remaining)
                result.heal_tokens = heal_steps
                result.tokens = len(generated)
                result.raw_text = template.decode_middle(loaded.tokenizer, generated)
                if remaining:
                    # Still re-creating the removed characters (the text is a prefix of them).
                    remaining, healed_body = advance(heal, result.raw_text)
                    if healed_body is not None:
                        cut = len(result.raw_text) - len(healed_body)
                if not remaining:
                    body = result.raw_text[cut:]
                    text, stopped = truncate_completion(
                        body, request.prefix, multiline=multiline, suffix=request.suffix
                    )
                    if stopped:
                        result.stop_reason = "stop_rule"
                        break
                if len(generated) - heal_steps >= request.max_new_tokens:
                    result.stop_reason = "max_tokens"
                    break
            if result.stop_reason:
                break
            room = request.max_new_tokens - (len(generated) - heal_steps)
            pending = self._step(ids, generated, cancel, room, remaining)
            result.forward_passes += 1
        result.text = postprocess(text, request.prefix, request.suffix)

    def _reuse_length(self, ids: list[int]) -> int:
        return self._kv.reuse_length(ids) if self.kv_reuse else 0

    def _forward(self, tokens: list[int], keep_logits: int) -> Any:
        return self._kv.forward(self._loaded.model, self._loaded.device, tokens, keep_logits)

    def _prefill(
        self, ids: list[int], cancel: threading.Event | None, chunk_size: int | None = None
    ) -> tuple[Any, int]:
        chunk_size = chunk_size or self.prefill_chunk
        keep = self._reuse_length(ids)
        if keep == 0:
            self._kv.renew(self._loaded.model.config)
        else:
            self._kv.crop(keep)
        logits = None
        position = keep
        # Quantised models run chunks on float layers, single tokens on int kernels (.quant): the
        # last prompt token gets its own pass, as when the rest is cached (cache-free answers).
        alone = self._loaded.quantize != "none"
        while position < len(ids):
            LayerCancel.check(cancel)
            stop = len(ids) - 1 if alone and position < len(ids) - 1 else len(ids)
            chunk = ids[position : min(position + chunk_size, stop)]
            logits = self._forward(chunk, 1)[-1]
            position += len(chunk)
        assert logits is not None
        return logits, keep

    def _step(
        self,
        ids: list[int],
        generated: list[int],
        cancel: threading.Event | None,
        room: int,
        heal: str = "",
    ) -> list[int]:
        """Feed the last generated token (+ a prompt-lookup draft); return verified next tokens."""
        LayerCancel.check(cancel)
        last = generated[-1]
        if heal:
            return [self._pick(self._forward([last], 1)[-1], heal)]
        size = min(self.prompt_lookup_num_tokens, room - 1) if self.prompt_lookup else 0
        draft = draft_tokens(ids + generated, size)
        logits = self._forward([last, *draft], len(draft) + 1)
        predicted = [int(t) for t in logits.argmax(dim=-1).tolist()]
        accepted = 0
        while accepted < len(draft) and draft[accepted] == predicted[accepted]:
            accepted += 1
        if accepted < len(draft):
            self._kv.crop(len(self._cache_ids) - (len(draft) - accepted))
        return [*draft[:accepted], predicted[accepted]]

    def _heal_text(self, prefix: str) -> str:
        """The end of the cursor prefix to remove from the prompt and re-generate."""
        return heal_text(self._loaded, prefix) if self.token_healing else ""

    def _pick(self, logits: Any, heal: str) -> int:
        """Greedy choice; while healing, among the tokens consistent with the removed text."""
        return self._healer.pick(logits, self._loaded.tokenizer, self._loaded.device, heal)
