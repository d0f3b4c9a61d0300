"""One completion pipeline behind both ``textDocument/inlineCompletion`` and ``/completion``.

Order of work for a request (cheapest first, so keystrokes the user already typed past never
cost model time):

1. supersede: a newer request for the same document sets the older one's cancel event, so a
   queued job is skipped and a running generation stops within one decoding step;
2. typed-through cache: if the user typed the start of the completion on screen, answer the rest;
3. not ready (model loading or failed): answer empty at once;
4. debounce: wait ``debounceMs``; a newer request wakes and retires this one immediately;
5. the model, on the dedicated worker thread.

Being ready before the user asks (setting ``prefetch``, see :class:`Prefetcher`): when a document
is opened or the cursor enters another top-level block, the prompt for that position is
prefilled into the KV cache as a *background* worker job; once a suggestion is shown, the
completion that would follow its acceptance is computed in the background and stored in the
typed-through cache as a speculative entry, so Tab-accepting a chain of suggestions never waits
for the model. Background jobs run only when no real request is queued and any real request
pre-empts them within one decoder layer (a cancelled prefill keeps the passes that completed).

Independent of pygls: handlers pass plain text, offsets and settings in and get an
:class:`Outcome` back. ``asyncio.CancelledError`` (``$/cancelRequest``) also sets the cancel event.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from lsp_server.metrics import CompletionStats, PrefetchStats
from lsp_server.model_host import LoadFailure, ModelHost
from lsp_server.settings import Settings
from lsp_server.text import cursor_context, looks_binary
from lsp_server.typed_through import TypedThroughCache

if TYPE_CHECKING:
    from model_runtime.engine import CompletionRequest, CompletionResult, Engine
    from model_runtime.retrieval import RepoIndex, Snippet

__all__ = [
    "CompletionService", "Outcome", "Prefetcher", "RepoContextSource", "block_key", "open_cursor",
]  # fmt: skip

logger = logging.getLogger(__name__)

Source = Literal["model", "cache", "not-ready", "superseded", "binary", "error"]
CHARS_PER_TOKEN_BOUND = 8
"""Generous chars/token bound: the window handed to the prompt builder never starves it."""


@dataclass
class Outcome:
    """What a completion request produced: ``text`` (possibly empty) and where it came from."""

    text: str
    source: Source
    result: CompletionResult | None = None
    error: str | None = None
    elapsed_s: float = 0.0


@dataclass
class _Flight:
    """One model run for a document; concurrent identical requests await the same run."""

    uri: str
    text: str
    offset: int
    cancel: threading.Event = field(default_factory=threading.Event)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[Outcome] | None = None
    waiters: int = 0

    def retire(self) -> None:
        self.cancel.set()
        self.wake.set()

    def same_context(self, text: str, offset: int) -> bool:
        return self.offset == offset and (self.text is text or self.text == text)


class CompletionService:
    """Supersede → cache → readiness → debounce → model, per document."""

    def __init__(
        self,
        host: ModelHost,
        *,
        stats: CompletionStats | None = None,
        cache: TypedThroughCache | None = None,
    ) -> None:
        self.host = host
        self.stats = stats or CompletionStats()
        self.cache = cache or TypedThroughCache()
        self._flights: dict[str, _Flight] = {}
        self.prefetcher = Prefetcher(self)
        self.repo_context = RepoContextSource()

    def cancel(self, uri: str) -> None:
        """Retire any in-flight run for ``uri`` (document closed, superseded)."""
        if (flight := self._flights.pop(uri, None)) is not None:
            flight.retire()

    def cancel_all(self) -> None:
        """Retire every in-flight run and background job (shutdown, model reload)."""
        for uri in list(self._flights):
            self.cancel(uri)
        self.prefetcher.cancel()

    async def complete(
        self,
        *,
        uri: str,
        text: str,
        offset: int,
        path: str,
        language: str | None,
        settings: Settings,
    ) -> Outcome:
        """Complete at ``offset`` of ``text`` (the document snapshot at request time)."""
        started = time.perf_counter()
        self.stats.requests += 1
        flight = self._flights.get(uri)
        if flight is None or flight.cancel.is_set() or not flight.same_context(text, offset):
            self.cancel(uri)
            if (found := self.cache.find(uri, text, offset)) is not None:
                rest, entry = found
                self.stats.cache_hits += 1
                self.prefetcher.cache_answered(uri, text, offset, rest, entry.speculative)
                self.prefetcher.speculate(uri, text, offset, rest, path, language, settings)
                return Outcome(rest, "cache", elapsed_s=time.perf_counter() - started)
            self.prefetcher.cache_missed(uri, text, offset)
            if not self.host.ready:
                return Outcome("", "not-ready", error=self.host.error)
            if looks_binary(text):
                return Outcome("", "binary", error="the document looks binary")
            flight = self._start(uri, text, offset, path, language, settings)
        flight.waiters += 1
        try:
            assert flight.task is not None
            outcome = await asyncio.shield(flight.task)
        except asyncio.CancelledError:
            # $/cancelRequest: stop the model only if no other request waits for this run.
            if flight.waiters == 1:
                flight.retire()
            raise
        finally:
            flight.waiters -= 1
        return dataclasses.replace(outcome, elapsed_s=time.perf_counter() - started)

    def _start(
        self, uri: str, text: str, offset: int, path: str, language: str | None, settings: Settings
    ) -> _Flight:
        flight = _Flight(uri, text, offset)
        flight.task = asyncio.ensure_future(
            self._run(flight, text, offset, path, language, settings)
        )
        self._flights[uri] = flight

        def finished(_: asyncio.Task[Outcome]) -> None:
            if self._flights.get(uri) is flight:
                del self._flights[uri]

        flight.task.add_done_callback(finished)
        return flight

    async def _run(
        self,
        flight: _Flight,
        text: str,
        offset: int,
        path: str,
        language: str | None,
        settings: Settings,
    ) -> Outcome:
        if settings.debounce_ms > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(flight.wake.wait(), settings.debounce_ms / 1000)
        if flight.cancel.is_set():
            self.stats.cancelled += 1
            return Outcome("", "superseded")
        request = self._request(text, offset, path, language, settings)
        try:
            result = await asyncio.wrap_future(self.host.complete(request, flight.cancel))
        except LoadFailure as exc:
            return Outcome("", "not-ready", error=str(exc))
        except asyncio.CancelledError:
            if flight.cancel.is_set() and not _current_task_cancelling():
                self.stats.cancelled += 1
                return Outcome("", "superseded")  # the worker skipped the queued job
            raise
        except Exception as exc:
            logger.error("completion failed for %s", path, exc_info=True)
            return Outcome("", "error", error=f"{type(exc).__name__}: {exc}")
        if result.cancelled:
            self.stats.cancelled += 1
            return Outcome("", "superseded", result)
        self.stats.record(result.latency_s, result.tokens, result.tokens_per_s)
        self.stats.record_prompt(result.prompt_tokens, result.reused_tokens)
        self.prefetcher.model_answered(result)
        self.cache.put(flight.uri, text, offset, result.text)
        self.prefetcher.speculate(flight.uri, text, offset, result.text, path, language, settings)
        return Outcome(result.text, "model", result)

    def _request(
        self, text: str, offset: int, path: str, language: str | None, settings: Settings
    ) -> CompletionRequest:
        from model_runtime.engine import CompletionRequest

        window = settings.context_tokens * CHARS_PER_TOKEN_BOUND
        context = cursor_context(text, offset, window_chars=window)
        start = offset - len(context.prefix)
        return CompletionRequest(
            path=path,
            prefix=context.prefix,
            suffix=context.suffix,
            language=language,
            max_new_tokens=settings.max_new_tokens,
            context_tokens=settings.context_tokens,
            prefix_line=text.count("\n", 0, start),
            snippets=self.repo_context.snippets(text, offset, path, language, context, settings),
            repo_name=self.repo_context.name,
            repo_context_tokens=settings.repo_context_tokens,
        )


class RepoContextSource:
    """Snippets of other dataset files for a cursor, stable while the user stays in one block.

    The index (:class:`model_runtime.retrieval.RepoIndex`) is attached by the dataset
    feature once the watcher has synced; until then, with ``repoContext`` off, or for an empty
    index, no snippets. Retrieval runs again only when the cursor's enclosing top-level block
    (:func:`block_key`) or the file changes, so the context block at the start of the prompt
    keeps its tokens (and the KV cache) while the user types.
    """

    def __init__(self) -> None:
        self.index: RepoIndex | None = None
        self.name = ""
        """Repository name for Qwen's ``<|repo_name|>`` line (the workspace folder's name)."""
        self._cached: dict[str, tuple[str, tuple[Snippet, ...]]] = {}
        self.last: dict[str, Any] | None = None
        """Where the snippets of the last request came from (for ``codellama.status``)."""
        self.retrievals = 0
        self.retrieval_ms: list[float] = []

    def attach(self, index: RepoIndex | None, name: str = "") -> None:
        """Serve snippets from ``index`` (``None`` detaches it)."""
        self.index, self.name = index, name
        self._cached.clear()

    def snippets(
        self,
        text: str,
        offset: int,
        path: str,
        language: str | None,
        context: Any,
        settings: Settings,
    ) -> tuple[Snippet, ...]:
        """Snippets for the cursor (most relevant first); cached per block of the file."""
        index = self.index
        if not settings.repo_context or index is None or settings.repo_context_tokens <= 0:
            return ()
        index.touch(path)
        key = block_key(text, offset)
        cached = self._cached.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        from model_runtime.retrieval import context_for

        started = time.perf_counter()
        found = tuple(context_for(index, path, context.prefix, context.suffix, language=language))
        elapsed = (time.perf_counter() - started) * 1000
        self.retrievals += 1
        self.retrieval_ms = [*self.retrieval_ms[-99:], elapsed]
        if len(self._cached) > 64:
            self._cached.clear()
        self._cached[path] = (key, found)
        self.last = {
            "path": path,
            "block": key,
            "retrievalMs": round(elapsed, 2),
            "snippets": [s.as_json() for s in found],
        }
        if found:
            logger.debug("repository context for %s: %s", path, [s.as_json() for s in found])
        return found

    def forget(self, paths: set[str] | None = None) -> None:
        """Retrieve again next time for cursors in ``paths`` or whose snippets came from them
        (``None``: everywhere), so an edited file is never served from its old text."""
        if paths is None:
            self._cached.clear()
            return
        for path, (_, found) in list(self._cached.items()):
            if path in paths or any(s.path in paths for s in found):
                del self._cached[path]

    def status(self) -> dict[str, Any]:
        """Index size, retrieval times and the last request's snippet sources."""
        times = sorted(self.retrieval_ms)
        return {
            "index": self.index.stats() if self.index is not None else None,
            "retrievals": self.retrievals,
            "retrievalMsP95": round(times[int(0.95 * (len(times) - 1))], 2) if times else None,
            "lastPrompt": self.last,
        }


PREFETCH_CHUNK = 128
"""Prompt tokens per forward pass of a background prefill: a cancel loses at most one chunk."""
OPEN_CHARS_PER_TOKEN = 3
"""Conservative chars/token of code, to guess how much of an opened file one prompt holds."""
BLOCK_SCAN_CHARS = 32768
"""How far above the cursor :func:`block_key` looks for the enclosing top-level line."""
_NOT_TOP_LEVEL = (")", "]", "}", "#", "//", "/*", "*", "@", '"""', "'''")


def block_key(text: str, offset: int) -> str:
    """The enclosing top-level block at ``offset``: its first line (``def f(x):``, ``class A:``).

    The nearest line above the cursor's line that starts in column 0 and is not a closing
    bracket, comment, decorator or docstring quote; "" when there is none within
    :data:`BLOCK_SCAN_CHARS`. The cursor's own line is not looked at, so typing a new
    top-level line keeps the key until Enter moves into its body. Cheap (a bounded backwards
    scan), so it runs on every keystroke.
    """
    end = text.rfind("\n", 0, offset)
    floor = max(0, offset - BLOCK_SCAN_CHARS)
    while end > floor:
        start = text.rfind("\n", floor, end) + 1
        if start == 0 and floor > 0:
            break  # the scan window cut this line: don't guess from a fragment
        line = text[start:end]
        if line[:1].strip() and not line.startswith(_NOT_TOP_LEVEL):
            return line.rstrip()[:200]
        end = start - 1
    return ""


def open_cursor(text: str, context_tokens: int) -> list[int]:
    """Where to prefill an opened document, best first (the cursor is unknown on open).

    A prefix-first prompt whose window starts at the top of the file shares its prefix with
    the prompt of any cursor above its own, so: the end of the document when one prompt may
    hold all of it, else the end of the line at about one prompt's worth of text, then line
    ends at half and a quarter of that (the worker takes the first whose prompt is not cut).
    """
    limit = min(len(text), context_tokens * OPEN_CHARS_PER_TOKEN)
    offsets: list[int] = []
    for size in (limit, limit // 2, limit // 4):
        cut = size if size == len(text) else text.rfind("\n", 0, size) + 1
        if cut > 0 and cut not in offsets:
            offsets.append(cut)
    return offsets or [len(text)]


@dataclass
class _Background:
    """One background model job: a prefill or a speculative completion."""

    kind: Literal["prefill", "speculate"]
    uri: str
    text: str
    offset: int
    cancel: threading.Event = field(default_factory=threading.Event)
    task: asyncio.Task[None] | None = None
    fallbacks: tuple[int, ...] = ()
    """Prefill: earlier cursors to try, in order, when the prompt at ``offset`` is cut at its
    start (document open: a window that starts at the top of the file serves every cursor)."""

    def targets(self, uri: str, text: str, offset: int) -> bool:
        return (
            self.uri == uri and self.offset == offset and (self.text is text or self.text == text)
        )

    @property
    def pending(self) -> bool:
        return self.task is not None and not self.task.done() and not self.cancel.is_set()


class Prefetcher:
    """Background prefill on open / block change, and speculative next suggestions.

    Owned by a :class:`CompletionService` (``service.prefetcher``); every method runs on the
    event loop. At most one background prefill and one speculation are alive: a newer one of
    the same kind cancels the older. Counters land in ``service.stats.prefetch``.
    """

    def __init__(self, service: CompletionService) -> None:
        self.service = service
        self._prefill: _Background | None = None
        self._speculation: _Background | None = None
        self._blocks: dict[str, str] = {}
        self._cached_before: int | None = None
        """KV tokens cached before the last background prefill that added some (hit test);
        written on the worker thread, read on the loop after the next real run finished."""

    @property
    def _stats(self) -> PrefetchStats:
        return self.service.stats.prefetch

    # -- hooks ------------------------------------------------------------------------------

    def document_opened(
        self, uri: str, text: str, path: str, language: str | None, settings: Settings
    ) -> None:
        """Prefill for the opened document (at :func:`open_cursor`)."""
        offset, *fallbacks = open_cursor(text, settings.context_tokens)
        self._blocks[uri] = block_key(text, offset)
        self._start("prefill", uri, text, offset, path, language, settings, tuple(fallbacks))

    def cursor_moved(
        self,
        uri: str,
        text: str,
        offset: int,
        path: str,
        language: str | None,
        settings: Settings,
        *,
        prefetch: bool = True,
    ) -> None:
        """The cursor is at ``offset`` (an edit or a request): prefill when it entered another
        top-level block (``prefetch=False`` only records the block, e.g. for a request that
        runs the model itself)."""
        key = block_key(text, offset)
        if self._blocks.get(uri) == key:
            return
        self._blocks[uri] = key
        if prefetch:
            self._start("prefill", uri, text, offset, path, language, settings)

    def speculate(
        self,
        uri: str,
        text: str,
        offset: int,
        shown: str,
        path: str,
        language: str | None,
        settings: Settings,
    ) -> None:
        """``shown`` is on screen at ``offset``: compute what follows its acceptance."""
        if not shown:
            return
        accepted = text[:offset] + shown + text[offset:]
        cursor = offset + len(shown)
        spec = self._speculation
        if spec is not None and spec.pending and spec.targets(uri, accepted, cursor):
            return
        if self.service.cache.find(uri, accepted, cursor) is not None:
            return
        self._start("speculate", uri, accepted, cursor, path, language, settings)

    def cache_answered(
        self, uri: str, text: str, offset: int, rest: str, speculative: bool
    ) -> None:
        """A request was answered from the cache (count speculative hits)."""
        if speculative and rest:
            self._stats.speculative_hits += 1

    def cache_missed(self, uri: str, text: str, offset: int) -> None:
        """A request the cache could not answer: a speculative miss if we were computing it."""
        spec = self._speculation
        if spec is not None and spec.targets(uri, text, offset):
            self._stats.speculative_misses += 1
            self._speculation = None  # count it once

    def model_answered(self, result: CompletionResult) -> None:
        """A real model completion finished: did it use the last background prefill?"""
        before, self._cached_before = self._cached_before, None
        if before is not None:
            if result.reused_tokens > before:
                self._stats.hits += 1
            else:
                self._stats.misses += 1

    def forget(self, uri: str) -> None:
        """The document closed: drop its background work and block."""
        self._blocks.pop(uri, None)
        for job in (self._prefill, self._speculation):
            if job is not None and job.uri == uri:
                job.cancel.set()

    def cancel(self) -> None:
        """Cancel every background job (model reload, shutdown)."""
        for job in (self._prefill, self._speculation):
            if job is not None:
                job.cancel.set()

    # -- jobs -------------------------------------------------------------------------------

    def _start(
        self,
        kind: Literal["prefill", "speculate"],
        uri: str,
        text: str,
        offset: int,
        path: str,
        language: str | None,
        settings: Settings,
        fallbacks: tuple[int, ...] = (),
    ) -> None:
        if not settings.prefetch or not self.service.host.ready or looks_binary(text):
            return
        old = self._prefill if kind == "prefill" else self._speculation
        if old is not None:
            old.cancel.set()
        job = _Background(kind, uri, text, offset, fallbacks=fallbacks)
        if kind == "prefill":
            self._prefill = job
            self._stats.prefills += 1
        else:
            self._speculation = job
            self._stats.speculations += 1
        self._stats.active += 1
        job.task = asyncio.ensure_future(self._run(job, path, language, settings))

    async def _run(
        self, job: _Background, path: str, language: str | None, settings: Settings
    ) -> None:
        service = self.service
        cancel = job.cancel
        cancelled = False
        try:
            request = service._request(job.text, job.offset, path, language, settings)
            if job.kind == "prefill":
                options = [request] + [
                    service._request(job.text, offset, path, language, settings)
                    for offset in job.fallbacks
                ]

                def prefill(engine: Engine) -> tuple[CompletionResult, int]:
                    chosen = next((r for r in options if _from_top(engine, r)), options[-1])
                    result = engine.prefill(chosen, cancel, chunk=PREFETCH_CHUNK)
                    if engine.cached_tokens > result.reused_tokens:
                        # Set on the worker thread, so the next real run surely sees it.
                        self._cached_before = result.reused_tokens
                    return result, engine.cached_tokens

                future = service.host.run(prefill, cancel=cancel, name="prefetch", background=True)
                result, cached = await asyncio.wrap_future(future)
                cancelled = result.cancelled
                self._stats.prefilled_tokens += max(0, cached - result.reused_tokens)
            else:

                def speculate(engine: Engine) -> CompletionResult:
                    self._cached_before = None  # the cache will hold the speculation's prompt
                    return engine.complete(request, cancel)

                spec = service.host.run(speculate, cancel=cancel, name="speculate", background=True)
                outcome = await asyncio.wrap_future(spec)
                cancelled = outcome.cancelled
                if not cancelled:
                    service.cache.put(job.uri, job.text, job.offset, outcome.text, speculative=True)
        except asyncio.CancelledError:
            cancelled = True  # skipped: a real request arrived before it started
            if not cancel.is_set():
                raise
        except LoadFailure:
            cancelled = True
        except Exception:
            logger.debug("background %s failed for %s", job.kind, path, exc_info=True)
            cancelled = True
        finally:
            self._stats.active -= 1
            if cancelled:
                if job.kind == "prefill":
                    self._stats.prefills_cancelled += 1
                else:
                    self._stats.speculations_cancelled += 1


def _from_top(engine: Engine, request: CompletionRequest) -> bool:
    """Whether the prompt for ``request`` keeps the start of its prefix (the window was not
    cut or re-anchored at its top), so it shares its tokens with prompts of cursors above."""
    prompt = engine.prompt_for(request)
    body = prompt.prefix[len(prompt.header) :]
    return bool(body) and request.prefix.startswith(body[:256])


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return bool(task is not None and task.cancelling())
