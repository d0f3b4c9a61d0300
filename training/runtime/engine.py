"""The generation engine: synchronous, greedy, cancellable, with KV prefix reuse.

One decode loop of our own (not ``generate``) so that we can

- keep the last prompt's token ids and ``past_key_values`` and, for the next request, reuse the
  longest common token prefix (the cache is cropped to it and only the new tail is prefilled);
- check a ``threading.Event`` before every forward pass and before every decoder layer (a
  forward pre-hook), so a cancelled request stops within a fraction of one decoding step; the
  cache is trimmed back to the last complete pass, so a cancelled request's prefill still warms
  the cache for the request that superseded it;
- apply the stop rules of :mod:`training.runtime.stops` to the decoded text as it grows;
- optionally verify prompt-lookup drafts (n-gram matches copied from the context), which is
  exactly greedy: the output is identical, only faster when the completion copies context;
- heal trailing whitespace: a prompt ending in spaces/newlines (an indented empty line,
  ``x = ``) is out of distribution for BPE models, which merge a newline with the indentation
  and write a space together with the next word (``"\\n       "`` + ``" if"``); the model then
  indents one column too far. The prefix's trailing whitespace is removed from the prompt and
  the first generated tokens are constrained to re-create it (a light form of token healing);
  it is not part of the returned text.

Thread-safety: an :class:`Engine` is NOT thread-safe. Call :meth:`Engine.complete`,
:meth:`Engine.set_adapter` and :meth:`Engine.reset_cache` from one dedicated worker thread
(the server's model thread); other threads may only set the ``cancel`` event they passed in.
The KV cache, the tokenizer and the model are shared between calls.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from training.runtime.prompt import DEFAULT_CONTEXT_TOKENS, Prompt, build_prompt
from training.runtime.stops import postprocess, truncate_completion, wants_multiline

if TYPE_CHECKING:
    from training.runtime.loader import LoadedModel

log = logging.getLogger(__name__)

_STICKY_HEAD = 256
"""Characters of the previous prompt's first line(s) used to find its start again."""


@dataclass
class CompletionRequest:
    """One completion at a cursor."""

    path: str
    """Workspace-relative or absolute file path (header comment + language guess)."""
    prefix: str
    """Document text before the cursor."""
    suffix: str
    """Document text after the cursor."""
    language: str | None = None
    """LSP language id (``python``...); guessed from ``path`` when ``None``."""
    max_new_tokens: int = 64
    """Upper bound on generated tokens."""
    multiline: bool | None = None
    """Force single-line (False) / multi-line (True); ``None`` decides from the cursor context."""
    context_tokens: int | None = None
    """Prompt token budget; ``None`` uses the engine default (1536)."""


@dataclass
class CompletionResult:
    """What :meth:`Engine.complete` returns."""

    text: str
    """Post-processed text to insert at the cursor (may be empty)."""
    tokens: int
    """Number of generated tokens."""
    latency_s: float
    """Wall time of the whole call."""
    cancelled: bool
    """True when ``cancel`` was set before generation finished (``text`` is then empty)."""
    stop_reason: str = ""
    """``eos`` | ``max_tokens`` | ``stop_rule`` | ``cancelled`` | ``empty`` (nothing to do)."""
    prompt_tokens: int = 0
    """Prompt length in tokens."""
    reused_tokens: int = 0
    """Prompt tokens served from the previous call's KV cache."""
    raw_text: str = ""
    """Decoded text before stop rules and post-processing."""
    multiline: bool = False
    """Whether multi-line mode was used."""
    first_token_s: float = 0.0
    """Time from the call to the first generated token (prompt building + prefill)."""
    forward_passes: int = 0
    """Decode forward passes (fewer than ``tokens`` when prompt-lookup drafts were accepted)."""
    healed: str = ""
    """Trailing whitespace of the prefix that was re-generated (``raw_text`` starts with it)."""

    @property
    def tokens_per_s(self) -> float:
        """Decode speed excluding prefill (0 when fewer than 2 tokens)."""
        decode = self.latency_s - self.first_token_s
        return (self.tokens - 1) / decode if self.tokens > 1 and decode > 0 else 0.0


class _Cancelled(Exception):
    """Internal: the cancel event was set between forward passes."""


class Engine:
    """Greedy completion engine around a :class:`LoadedModel`. Use from one thread only.

    ``kv_reuse``: keep the KV cache between requests (prefix reuse). ``prompt_lookup``: verify
    n-gram drafts of up to ``prompt_lookup_num_tokens`` tokens copied from the context.
    ``spm``: suffix-prefix-middle prompts (better cache reuse while typing at the end of the
    prefix, for models trained with SPM). ``prefill_chunk``: prompt tokens per forward pass
    during prefill. ``heal_whitespace``: re-generate the prefix's trailing spaces (see above).
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
        heal_whitespace: bool = True,
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
        self.heal_whitespace = heal_whitespace
        self._heal_cache: dict[tuple[int, str], Any] = {}
        self._cache: Any = None
        self._cache_ids: list[int] = []
        self._cancel: threading.Event | None = None
        self._sticky: tuple[str, int, str] | None = None
        self._hooked: weakref.WeakSet[Any] = weakref.WeakSet()
        self.last_result: CompletionResult | None = None

    @property
    def loaded(self) -> LoadedModel:
        """The model currently served (changes after :meth:`set_adapter`)."""
        return self._loaded

    @property
    def cached_tokens(self) -> int:
        """Tokens currently held in the reusable KV cache."""
        return len(self._cache_ids)

    def reset_cache(self) -> None:
        """Forget the KV cache kept for prefix reuse."""
        self._cache = None
        self._cache_ids = []
        self._sticky = None

    def set_adapter(self, path: str | None) -> None:
        """Serve ``path`` (a PEFT adapter dir) or the plain base model (``None``).

        On failure the error is raised and the engine serves either the previous state (bad
        directory, nothing touched) or the plain base model (the adapter did not fit).
        """
        from training.runtime.loader import ModelLoadError, apply_adapter

        self.reset_cache()
        self._heal_cache.clear()
        try:
            self._loaded = apply_adapter(self._loaded, path)
        except ModelLoadError as exc:
            fallback = getattr(exc, "fallback", None)
            if fallback is not None:
                self._loaded = fallback
            raise

    def prompt_for(self, request: CompletionRequest) -> Prompt:
        """The exact prompt :meth:`complete` would prefill for ``request`` (whitespace healing
        included), e.g. to run ``model.generate`` on the same ids in a benchmark."""
        sticky = self._sticky
        try:
            return self._build_prompt(self._prompt_request(request))
        finally:
            self._sticky = sticky

    def _prompt_request(self, request: CompletionRequest) -> CompletionRequest:
        heal = self._heal_text(request.prefix)
        return (
            dataclasses.replace(request, prefix=request.prefix[: -len(heal)]) if heal else request
        )

    def complete(
        self, request: CompletionRequest, cancel: threading.Event | None = None
    ) -> CompletionResult:
        """Generate a completion; returns within one decode step after ``cancel`` is set."""
        started = time.perf_counter()
        multiline = (
            request.multiline
            if request.multiline is not None
            else wants_multiline(request.prefix, request.suffix)
        )
        heal = self._heal_text(request.prefix)
        prompt = self._build_prompt(self._prompt_request(request))
        ids = prompt.input_ids
        result = CompletionResult(
            text="", tokens=0, latency_s=0.0, cancelled=False, prompt_tokens=len(ids),
            multiline=multiline, healed=heal,
        )  # fmt: skip
        if cancel is not None and cancel.is_set():
            return self._finish(result, started, "cancelled")
        if not ids or request.max_new_tokens <= 0:
            return self._finish(result, started, "empty")  # e.g. empty document, no BOS token

        import torch

        self._install_cancel_hooks()
        self._cancel = cancel
        try:
            with torch.inference_mode():
                self._generate(ids, request, multiline, cancel, result, started)
        except _Cancelled:
            self._trim_cache()  # the interrupted pass may have filled some layers already
            result.text = ""
            return self._finish(result, started, "cancelled")
        except BaseException:
            self.reset_cache()  # a forward pass may have died half-way through the cache
            raise
        finally:
            self._cancel = None
        return self._finish(result, started, result.stop_reason)

    def _build_prompt(self, request: CompletionRequest) -> Prompt:
        """The token-budgeted prompt, with a sticky start for long documents.

        When the prefix is cut, typing at the cursor would slide the cut line down and change
        the first prompt tokens, defeating the KV reuse. So the previous start line is kept
        while the prompt stays within 110 % of the budget; only then is the window re-cut.
        """
        loaded = self._loaded
        budget = request.context_tokens or self.context_tokens

        def build(prefix: str, tokens: int) -> Prompt:
            return build_prompt(
                loaded.tokenizer,
                loaded.template,
                path=request.path,
                prefix=prefix,
                suffix=request.suffix,
                context_tokens=tokens,
                language=request.language,
                spm=self.spm or loaded.fim_order == "spm",
            )

        sticky = self._sticky
        if self.kv_reuse and sticky is not None and sticky[0] == request.path:
            _, offset, head = sticky
            if request.prefix.startswith(head, offset):
                start = offset
            else:  # text was inserted/deleted above the start: look for it nearby
                start = request.prefix.find(head, max(0, offset - 4096))
            if start > 0:
                kept = build(request.prefix[start:], int(budget * 1.1))
                if not kept.prefix_truncated:
                    self._sticky = (request.path, start, head)
                    return kept
        prompt = build(request.prefix, budget)
        body = prompt.prefix[len(prompt.header) :]
        self._sticky = None
        if prompt.prefix_truncated and body:
            self._sticky = (request.path, len(request.prefix) - len(body), body[:_STICKY_HEAD])
        return prompt

    def _install_cancel_hooks(self) -> None:
        """A pre-hook on every decoder layer raises when the active request is cancelled."""
        for module in self._loaded.model.modules():
            if type(module).__name__.endswith("DecoderLayer") and module not in self._hooked:
                module.register_forward_pre_hook(self._cancel_hook)
                self._hooked.add(module)

    def _cancel_hook(self, module: Any, args: Any) -> None:
        cancel = self._cancel
        if cancel is not None and cancel.is_set():
            raise _Cancelled

    def _trim_cache(self) -> None:
        """Crop every cache layer back to the tokens of the last complete forward pass."""
        if self._cache is None:
            return
        keep = len(self._cache_ids)
        for layer in getattr(self._cache, "layers", []):
            extra = layer.get_seq_length() - keep
            if extra > 0:
                layer.crop(-extra)

    def _finish(self, result: CompletionResult, started: float, reason: str) -> CompletionResult:
        result.stop_reason = reason
        result.cancelled = reason == "cancelled"
        result.latency_s = time.perf_counter() - started
        self.last_result = result
        return result

    # -- decoding -------------------------------------------------------------------------------

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
        logits, result.reused_tokens = self._prefill(ids, cancel)
        result.first_token_s = time.perf_counter() - started
        pending = [self._pick(logits, remaining)]
        generated: list[int] = []
        text = ""
        while True:
            for token in pending:
                if token in stop_ids:
                    result.stop_reason = "eos"
                    break
                generated.append(token)
                result.tokens = len(generated)
                result.raw_text = template.decode_middle(loaded.tokenizer, generated)
                if remaining:
                    # Still re-creating the removed whitespace (the text is a prefix of it).
                    done = result.raw_text.startswith(heal)
                    remaining = "" if done else heal[len(result.raw_text) :]
                if not remaining:
                    body = result.raw_text[len(heal) :]
                    text, stopped = truncate_completion(
                        body, request.prefix, multiline=multiline, suffix=request.suffix
                    )
                    if stopped:
                        result.stop_reason = "stop_rule"
                        break
                if len(generated) >= request.max_new_tokens:
                    result.stop_reason = "max_tokens"
                    break
            if result.stop_reason:
                break
            room = request.max_new_tokens - len(generated)
            pending = self._step(ids, generated, cancel, room, remaining)
            result.forward_passes += 1
        result.text = postprocess(text, request.prefix, request.suffix)

    def _check(self, cancel: threading.Event | None) -> None:
        if cancel is not None and cancel.is_set():
            raise _Cancelled

    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self._loaded.model.config)

    def _reuse_length(self, ids: list[int]) -> int:
        """Longest common prefix with the cached ids (at least one token is always recomputed,
        since the logits of the last prompt token are needed)."""
        if not self.kv_reuse or self._cache is None or not self._cache_ids:
            return 0
        if any(getattr(layer, "is_sliding", False) for layer in getattr(self._cache, "layers", [])):
            return 0  # a sliding-window cache cannot be cropped back
        common = 0
        limit = min(len(ids) - 1, len(self._cache_ids))
        cached = self._cache_ids
        while common < limit and cached[common] == ids[common]:
            common += 1
        return common

    def _crop(self, keep: int) -> None:
        remove = len(self._cache_ids) - keep
        if remove > 0:
            self._cache.crop(-remove)
            del self._cache_ids[keep:]

    def _forward(self, tokens: list[int], keep_logits: int) -> Any:
        import torch

        model = self._loaded.model
        device = self._loaded.device
        out = model(
            input_ids=torch.tensor([tokens], dtype=torch.long, device=device),
            past_key_values=self._cache,
            use_cache=True,
            logits_to_keep=keep_logits,
        )
        self._cache_ids.extend(tokens)
        return out.logits[0]

    def _prefill(self, ids: list[int], cancel: threading.Event | None) -> tuple[Any, int]:
        keep = self._reuse_length(ids)
        if keep == 0:
            self._cache = self._new_cache()
            self._cache_ids = []
        else:
            self._crop(keep)
        logits = None
        position = keep
        while position < len(ids):
            self._check(cancel)
            chunk = ids[position : position + self.prefill_chunk]
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
        self._check(cancel)
        last = generated[-1]
        if heal:
            return [self._pick(self._forward([last], 1)[-1], heal)]
        draft = self._draft(ids + generated, room - 1) if self.prompt_lookup else []
        logits = self._forward([last, *draft], len(draft) + 1)
        predicted = [int(t) for t in logits.argmax(dim=-1).tolist()]
        accepted = 0
        while accepted < len(draft) and draft[accepted] == predicted[accepted]:
            accepted += 1
        if accepted < len(draft):
            self._crop(len(self._cache_ids) - (len(draft) - accepted))
        return [*draft[:accepted], predicted[accepted]]

    # -- whitespace healing -----------------------------------------------------------------

    def _heal_text(self, prefix: str) -> str:
        """The prefix's trailing whitespace to re-generate ("" when healing is off).

        Newlines are included: BPE vocabularies merge a newline with the next line's
        indentation (``"\\n       "`` + ``" self"``), so the prompt must end before them.
        """
        if not self.heal_whitespace:
            return ""
        heal = prefix[len(prefix.rstrip(" \t\r\n")) :]
        if not heal or self._heal_candidates(heal) is None:
            return ""
        return heal

    def _heal_candidates(self, remaining: str) -> Any:
        """Tensor of token ids whose text starts with ``remaining`` or is a prefix of it."""
        tokenizer = self._loaded.tokenizer
        key = (id(tokenizer), remaining)
        if key not in self._heal_cache:
            import torch

            table = _whitespace_tokens(tokenizer)
            allowed = [
                tid
                for tid, text in table
                if text.startswith(remaining) or remaining.startswith(text)
            ]
            self._heal_cache[key] = (
                torch.tensor(allowed, dtype=torch.long, device=self._loaded.device)
                if allowed
                else None
            )
        return self._heal_cache[key]

    def _pick(self, logits: Any, heal: str) -> int:
        """Greedy choice; while healing, among the tokens consistent with the whitespace."""
        if heal:
            allowed = self._heal_candidates(heal)
            if allowed is not None:
                return int(allowed[int(logits[allowed].argmax())])
        return int(logits.argmax())

    def _draft(self, context: list[int], room: int, max_ngram: int = 3) -> list[int]:
        """Tokens that followed the most recent earlier occurrence of the context's last n-gram."""
        size = min(self.prompt_lookup_num_tokens, room)
        if size <= 0:
            return []
        for n in range(max_ngram, 0, -1):
            if len(context) <= n:
                continue
            tail = context[-n:]
            for start in range(len(context) - n - 1, -1, -1):
                if context[start : start + n] == tail:
                    follow = context[start + n : start + n + size]
                    if follow:
                        return follow
        return []


_WS_TABLES: weakref.WeakKeyDictionary[Any, tuple[int, list[tuple[int, str]]]] = (
    weakref.WeakKeyDictionary()
)


def _whitespace_tokens(tokenizer: Any) -> list[tuple[int, str]]:
    """``(id, text)`` of every token whose text starts with whitespace (cached)."""
    size = len(tokenizer)
    cached = _WS_TABLES.get(tokenizer)
    if cached is not None and cached[0] == size:
        return cached[1]
    from training.runtime.fim import decode_infill_text

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        anchor = backend.encode("\n", add_special_tokens=False).ids[-1:]
        head = backend.decode(anchor, skip_special_tokens=False)
        texts = backend.decode_batch(
            [[*anchor, tid] for tid in range(size)], skip_special_tokens=False
        )
        decoded = [t[len(head) :] if t.startswith(head) else t for t in texts]
    else:
        decoded = [decode_infill_text(tokenizer, [tid]) for tid in range(size)]
    table = [(tid, text) for tid, text in enumerate(decoded) if text[:1] in (" ", "\t", "\n", "\r")]
    _WS_TABLES[tokenizer] = (size, table)
    return table
