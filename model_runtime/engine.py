"""The generation engine: synchronous, greedy, cancellable, with KV prefix reuse.

One decode loop of our own (not ``generate``) so that we can

- keep the last prompt's token ids and ``past_key_values`` and, for the next request, reuse the
  longest common token prefix (the cache is cropped to it and only the new tail is prefilled);
- check a ``threading.Event`` before every forward pass and before every decoder layer (a
  forward pre-hook), so a cancelled request stops within a fraction of one decoding step; the
  cache is trimmed back to the last complete pass, so a cancelled request's prefill still warms
  the cache for the request that superseded it;
- apply the stop rules of :mod:`model_runtime.stops` to the decoded text as it grows;
- optionally verify prompt-lookup drafts (n-gram matches copied from the context), which is
  exactly greedy: the output is identical, only faster when the completion copies context;
- token healing (:mod:`model_runtime.healing`, every FIM family, PSM and SPM): a prompt
  that ends mid-word (``self.comman``), in whitespace (``x = ``, an indented empty line) or
  after mergeable punctuation ends at a token boundary the model rarely saw, and it then
  repeats or drops characters (``.commanmand()``). The last token(s) of the *document* prefix
  are removed before the prompt is built (so the header and the FIM sentinels are never
  touched) and the first generated tokens are constrained to re-create the removed characters
  (each one's text is a prefix of what remains, or starts with it); then decoding is free. The
  removed text is ``CompletionResult.healed``: ``raw_text`` starts with it, ``text`` does not.
  Constrained tokens count against ``max_new_tokens`` (it bounds the decode passes).

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

from model_runtime.healing import advance, heal_table, plan_healing
from model_runtime.prompt import DEFAULT_CONTEXT_TOKENS, Prompt, build_prompt
from model_runtime.stops import postprocess, truncate_completion, wants_multiline

if TYPE_CHECKING:
    from model_runtime.loader import LoadedModel

log = logging.getLogger(__name__)

_STICKY_HEAD = 256
"""Characters of the prompt window's first line(s) used to recognise its start again."""
ANCHOR_TOKENS_PER_LINE = 48
"""Anchor step = budget ÷ this, in lines (1536 tokens → 32 lines, about a fifth of the window
at ~10 tokens per line of code): a cut prompt window starts at a file line that is a multiple
of the step (llama.vim aligns its 64-line chunks the same way), so moving or typing inside a
file keeps the prompt's first tokens until the cursor has moved about one step. A longer step
keeps the start over longer moves but leaves more of the prefix budget to the suffix."""
ANCHOR_SLACK_LINES = 2
"""A fresh window starts at least this many lines after the tightest cut: room to type."""


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
    snippets: tuple[Any, ...] = ()
    """Repository context, most relevant first (:class:`model_runtime.retrieval.Snippet`:
    objects with ``path`` and ``text``); placed first in the prompt, within the budget."""
    repo_name: str = ""
    """Repository name for Qwen's ``<|repo_name|>`` line (the workspace folder's name)."""
    repo_context_tokens: int | None = None
    """Token budget of the snippets; ``None`` uses the prompt builder's default (384)."""
    prefix_line: int = 0
    """Line number in the file where ``prefix`` starts (0: at the file start). Prompt windows
    start at line numbers that are multiples of :func:`anchor_lines`, counted from the file start."""


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
    """End of the prefix removed from the prompt and re-generated by token healing
    (``raw_text`` starts with it, ``text`` does not)."""
    heal_tokens: int = 0
    """Generated tokens spent re-creating ``healed`` (they do not count against
    ``max_new_tokens``: ``tokens - heal_tokens`` never exceeds it)."""

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
        self._heal_cache: dict[tuple[int, int, str], Any] = {}
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
        from model_runtime.loader import ModelLoadError, apply_adapter

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
        if heal is None:
            heal = self._heal_text(request.prefix)
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
        reason = "prefill"
        if cancel is not None and cancel.is_set():
            reason = "cancelled"
        elif not ids:
            reason = "empty"
        else:
            import torch

            self._install_cancel_hooks()
            self._cancel = cancel
            saved_chunk = self.prefill_chunk
            self.prefill_chunk = chunk or saved_chunk
            try:
                with torch.inference_mode():
                    self._prefill(ids, cancel)
            except _Cancelled:
                self._trim_cache()
                reason = "cancelled"
            except BaseException:
                self.reset_cache()
                raise
            finally:
                self._cancel = None
                self.prefill_chunk = saved_chunk
        result.stop_reason = reason
        result.cancelled = reason == "cancelled"
        result.latency_s = result.first_token_s = time.perf_counter() - started
        return result

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
        """The token-budgeted prompt; a cut window starts at a stable, line-aligned anchor.

        When the prefix does not fit, the tightest cut (lines taken outwards from the cursor)
        moves with every line the cursor moves, which would change the first prompt tokens and
        defeat the KV reuse. So the window starts at the first line after that cut whose file
        line number is a multiple of the anchor step (plus a little slack); the previous
        anchor is kept while it still fits and is at most one step later than a fresh one.
        Moving or typing inside a file then keeps the prompt's start until the cursor has moved
        about one anchor step (:func:`anchor_lines`) further. The repository context block comes before all of it.
        """
        loaded = self._loaded
        budget = request.context_tokens or self.context_tokens
        repo_tokens = request.repo_context_tokens

        def build(prefix: str) -> Prompt:
            return build_prompt(
                loaded.tokenizer,
                loaded.template,
                path=request.path,
                prefix=prefix,
                suffix=request.suffix,
                context_tokens=budget,
                language=request.language,
                spm=self.spm or loaded.fim_order == "spm",
                snippets=request.snippets,
                repo_name=request.repo_name,
                **({"repo_context_tokens": repo_tokens} if repo_tokens is not None else {}),
            )

        prompt = build(request.prefix)
        anchored = self._anchored(request, prompt, build) if self.kv_reuse else None
        if anchored is not None:
            prompt = anchored
        if log.isEnabledFor(logging.DEBUG):
            sources = prompt.context.sources if prompt.context is not None else []
            log.debug(
                "prompt for %s: %d tokens, context from %s:\n%s",
                request.path,
                len(prompt.input_ids),
                sources or "no other file",
                loaded.tokenizer.decode(prompt.input_ids, skip_special_tokens=False),
            )
        return prompt

    def _anchored(self, request: CompletionRequest, prompt: Prompt, build: Any) -> Prompt | None:
        """``prompt`` re-cut to start at an anchor line (``None``: keep ``prompt`` as is)."""
        prefix = request.prefix
        body = prompt.prefix[len(prompt.header) :]
        cut = len(prefix) - len(body)
        if not prompt.prefix_truncated and request.prefix_line == 0:
            self._sticky = None  # the whole file fits: the file start is the anchor
            return None
        if not body or (cut > 0 and prefix[cut - 1] != "\n"):
            return None  # the cursor line alone was cut by characters
        first = request.prefix_line + prefix.count("\n", 0, cut)  # file line of the tight cut
        step = anchor_lines(request.context_tokens or self.context_tokens)
        fresh = first + ANCHOR_SLACK_LINES
        fresh += -fresh % step
        sticky, self._sticky = self._sticky, None
        targets = [fresh]
        near = sticky is not None and fresh < sticky[1] <= fresh + step
        if sticky is not None and sticky[0] == request.path and near:
            targets.insert(0, sticky[1])  # hysteresis: moving back up a little keeps it
        cursor_line = prefix.rfind("\n") + 1
        for target in targets:
            offset = _line_start(prefix, cut, target - first)
            if offset is None or offset > cursor_line:
                continue
            if sticky is not None and target == sticky[1]:
                head = sticky[2][: len(prefix) - offset]
                if not prefix.startswith(head, offset):
                    continue
            anchored = build(prefix[offset:])
            if anchored.prefix_truncated:
                continue
            head_end = min(offset + _STICKY_HEAD, cursor_line)  # whole lines, not the cursor's
            self._sticky = (request.path, target, prefix[offset:head_end])
            # The document's prefix *was* cut (callers such as the prefetcher ask this).
            return dataclasses.replace(anchored, prefix_truncated=True)
        return None

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

    # -- token healing --------------------------------------------------------------------

    def _heal_text(self, prefix: str) -> str:
        """The end of the cursor prefix to remove from the prompt and re-generate.

        "" when healing is off or nothing needs it. Only the document prefix is looked at (the
        header and FIM sentinels are added after), see :func:`model_runtime.healing.plan_healing`.
        """
        if not self.token_healing or not prefix:
            return ""
        loaded = self._loaded
        heal = plan_healing(loaded.tokenizer, prefix)
        template = loaded.template
        if heal == prefix and not template.supports_fim and template.bos_id is None:
            return ""  # a plain left-to-right prompt would be empty
        return heal

    def _heal_candidates(self, remaining: str) -> Any:
        """Tensor of token ids whose text starts with ``remaining`` or is a prefix of it.

        The table's ids (sorted by text) live on the device once; the ids starting with
        ``remaining`` are a contiguous slice of them (a bisect), the few proper prefixes of
        ``remaining`` are dict look-ups: well under a millisecond even for a 151k vocabulary.
        """
        import torch

        loaded = self._loaded
        table = heal_table(loaded.tokenizer)
        key = (id(table), table.size, str(loaded.device))
        cached = self._heal_cache.get(key)
        if cached is None or cached[0] is not table:
            ids = torch.tensor(table.ids, dtype=torch.long, device=loaded.device)
            cached = self._heal_cache[key] = (table, ids)
        lo, hi = table.span(remaining)
        starts = cached[1][lo:hi]
        prefixes = table.prefix_ids(remaining)
        if not prefixes:
            return starts if hi > lo else None
        extra = torch.tensor(prefixes, dtype=torch.long, device=loaded.device)
        return torch.cat([starts, extra]) if hi > lo else extra

    def _pick(self, logits: Any, heal: str) -> int:
        """Greedy choice; while healing, among the tokens consistent with the removed text."""
        if heal:
            allowed = self._heal_candidates(heal)
            if allowed is not None:
                return int(allowed[int(logits.index_select(0, allowed).argmax())])
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


def anchor_lines(context_tokens: int) -> int:
    """Lines between prompt-window anchors for a budget (4 to 64)."""
    return max(4, min(64, context_tokens // ANCHOR_TOKENS_PER_LINE))


def _line_start(text: str, offset: int, lines: int) -> int | None:
    """Offset of the line ``lines`` lines after the line starting at ``offset`` (None: none)."""
    for _ in range(lines):
        newline = text.find("\n", offset)
        if newline < 0:
            return None
        offset = newline + 1
    return offset
