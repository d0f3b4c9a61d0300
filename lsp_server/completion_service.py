"""One completion pipeline behind both ``textDocument/inlineCompletion`` and ``/completion``.

Order of work for a request (cheapest first, so keystrokes the user already typed past never
cost model time):

1. supersede: a newer request for the same document sets the older one's cancel event, so a
   queued job is skipped and a running generation stops within one decoding step;
2. typed-through cache: if the user typed the start of the completion on screen, answer the rest;
3. not ready (model loading or failed): answer empty at once;
4. debounce: wait ``debounceMs``; a newer request wakes and retires this one immediately;
5. the model, on the dedicated worker thread.

Being ready before the user asks: :mod:`lsp_server.prefetch` (``service.prefetcher``).
Repository context: :mod:`lsp_server.repo_snippets` (``service.repo_context``).

Independent of pygls: handlers pass plain text, offsets and settings in and get a
:class:`CompletionOutcome` back. ``asyncio.CancelledError`` (``$/cancelRequest``) also sets the
cancel event.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from lsp_server.blocks import block_key
from lsp_server.metrics import CompletionStats
from lsp_server.model_host import LoadFailure, ModelHost
from lsp_server.prefetch import PREFETCH_CHUNK, Prefetcher, open_cursor
from lsp_server.remote_engine import failed_remotely
from lsp_server.repo_snippets import RepoContextSource
from lsp_server.settings import Settings
from lsp_server.text import cursor_context, looks_binary
from lsp_server.typed_through import TypedThroughCache

if TYPE_CHECKING:
    from model_runtime.engine import CompletionRequest, CompletionResult

__all__ = [
    "PREFETCH_CHUNK", "CompletionOutcome", "CompletionService", "Prefetcher", "RepoContextSource",
    "block_key", "open_cursor",
]  # fmt: skip

logger = logging.getLogger(__name__)

Source = Literal["model", "cache", "not-ready", "superseded", "binary", "error", "engine"]
"""``engine``: a remote engine failed (down, slow, garbling; ``error`` says how) or cut the
stream short: answered empty, never cached (the engine is asked again next time), not logged
here (the engine logs one line per outage)."""
CHARS_PER_TOKEN_BOUND = 8
"""Generous chars/token bound: the window handed to the prompt builder never starves it."""


@dataclass
class CompletionOutcome:
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
    task: asyncio.Task[CompletionOutcome] | None = None
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
    ) -> CompletionOutcome:
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
                return CompletionOutcome(rest, "cache", elapsed_s=time.perf_counter() - started)
            self.prefetcher.cache_missed(uri, text, offset)
            if not self.host.ready:
                return CompletionOutcome("", "not-ready", error=self.host.error)
            if looks_binary(text):
                return CompletionOutcome("", "binary", error="the document looks binary")
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

        def finished(_: asyncio.Task[CompletionOutcome]) -> None:
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
    ) -> CompletionOutcome:
        if settings.debounce_ms > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(flight.wake.wait(), settings.debounce_ms / 1000)
        if flight.cancel.is_set():
            self.stats.cancelled += 1
            return CompletionOutcome("", "superseded")
        request = self.request_for(text, offset, path, language, settings)
        try:
            result = await asyncio.wrap_future(self.host.complete(request, flight.cancel))
        except LoadFailure as exc:
            return CompletionOutcome("", "not-ready", error=str(exc))
        except asyncio.CancelledError:
            if flight.cancel.is_set() and not _current_task_cancelling():
                self.stats.cancelled += 1
                return CompletionOutcome("", "superseded")  # the worker skipped the queued job
            raise
        except Exception as exc:
            logger.error("completion failed for %s", path, exc_info=True)
            return CompletionOutcome("", "error", error=f"{type(exc).__name__}: {exc}")
        if result.cancelled:
            self.stats.cancelled += 1
            return CompletionOutcome("", "superseded", result)
        if failed_remotely(result):
            error = getattr(result, "error", "") or "the engine cut the stream short"
            return CompletionOutcome("", "engine", result, error=error)
        self.stats.record(result.latency_s, result.tokens, result.tokens_per_s)
        self.stats.record_prompt(result.prompt_tokens, result.reused_tokens)
        self.prefetcher.model_answered(result)
        self.cache.put(flight.uri, text, offset, result.text)
        self.prefetcher.speculate(flight.uri, text, offset, result.text, path, language, settings)
        return CompletionOutcome(result.text, "model", result)

    def request_for(
        self, text: str, offset: int, path: str, language: str | None, settings: Settings
    ) -> CompletionRequest:
        """The engine request for a cursor: a window of the document, repository context."""
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


def _current_task_cancelling() -> bool:
    task = asyncio.current_task()
    return bool(task is not None and task.cancelling())
