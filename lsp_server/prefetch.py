"""Being ready before the user asks: background prefill and speculative next suggestions.

Setting ``prefetch``. When a document is opened or the cursor enters another top-level block
(:func:`lsp_server.blocks.block_key`), the prompt for that position is prefilled into the KV
cache as a *background* worker job; once a suggestion is shown, the completion that would
follow its acceptance is computed in the background and stored in the typed-through cache as a
speculative entry, so Tab-accepting a chain of suggestions never waits for the model.
Background jobs run only when no real request is queued and any real request pre-empts them
within one decoder layer (a cancelled prefill keeps the passes that completed). Off on an
engine that cannot be pre-empted so (``ModelHost.background_prefill``: llama-cpp-python's
server has one slot and evaluates a prompt to its end); a speculation the engine failed is not
cached.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from lsp_server.blocks import block_key
from lsp_server.metrics import PrefetchStats
from lsp_server.model_host import LoadFailure
from lsp_server.remote_engine import failed_remotely
from lsp_server.settings import Settings
from lsp_server.text import looks_binary

if TYPE_CHECKING:
    from lsp_server.completion_service import CompletionService
    from model_runtime.engine import CompletionRequest, CompletionResult, Engine

__all__ = ["OPEN_CHARS_PER_TOKEN", "PREFETCH_CHUNK", "Prefetcher", "open_cursor"]

logger = logging.getLogger(__name__)

PREFETCH_CHUNK = 128
"""Prompt tokens per forward pass of a background prefill: a cancel loses at most one chunk."""
OPEN_CHARS_PER_TOKEN = 3
"""Conservative chars/token of code, to guess how much of an opened file one prompt holds."""

Kind = Literal["prefill", "speculate"]


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

    kind: Kind
    uri: str
    text: str
    offset: int
    path: str
    language: str | None
    settings: Settings
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

    Owned by a :class:`~lsp_server.completion_service.CompletionService`
    (``service.prefetcher``); every method runs on the event loop. At most one background job
    of each kind is alive: a newer one cancels the older. Counters land in
    ``service.stats.prefetch``.
    """

    def __init__(self, service: CompletionService) -> None:
        self.service = service
        self._jobs: dict[Kind, _Background] = {}
        self._blocks: dict[str, str] = {}
        """The last top-level block per open document (dropped on close)."""
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
        job = _Background("prefill", uri, text, offset, path, language, settings)
        job.fallbacks = tuple(fallbacks)
        self._start(job)

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
            self._start(_Background("prefill", uri, text, offset, path, language, settings))

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
        spec = self._jobs.get("speculate")
        if spec is not None and spec.pending and spec.targets(uri, accepted, cursor):
            return
        if self.service.cache.find(uri, accepted, cursor) is not None:
            return
        self._start(_Background("speculate", uri, accepted, cursor, path, language, settings))

    def cache_answered(
        self, uri: str, text: str, offset: int, rest: str, speculative: bool
    ) -> None:
        """A request was answered from the cache (count speculative hits)."""
        if speculative and rest:
            self._stats.speculative_hits += 1

    def cache_missed(self, uri: str, text: str, offset: int) -> None:
        """A request the cache could not answer: a speculative miss if we were computing it."""
        spec = self._jobs.get("speculate")
        if spec is not None and spec.targets(uri, text, offset):
            self._stats.speculative_misses += 1
            del self._jobs["speculate"]  # count it once

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
        self.cancel(uri)

    def cancel(self, uri: str | None = None) -> None:
        """Cancel the background jobs for ``uri`` (``None``: all; model reload, shutdown)."""
        for job in self._jobs.values():
            if uri is None or job.uri == uri:
                job.cancel.set()

    # -- jobs -------------------------------------------------------------------------------

    def _start(self, job: _Background) -> None:
        settings, host = job.settings, self.service.host
        if not settings.prefetch or not host.ready or looks_binary(job.text):
            return
        if not host.background_prefill:  # one engine slot (llama-cpp-python): never block it
            return
        old = self._jobs.get(job.kind)
        if old is not None:
            old.cancel.set()
        self._jobs[job.kind] = job
        self._count(job.kind)
        self._stats.active += 1
        job.task = asyncio.ensure_future(self._run(job))

    def _count(self, kind: Kind, *, cancelled: bool = False) -> None:
        """Count a started job, or (``cancelled``) one that was cancelled or skipped."""
        stats = self._stats
        if kind == "prefill" and cancelled:
            stats.prefills_cancelled += 1
        elif kind == "prefill":
            stats.prefills += 1
        elif cancelled:
            stats.speculations_cancelled += 1
        else:
            stats.speculations += 1

    async def _run(self, job: _Background) -> None:
        cancelled = True
        try:
            if job.kind == "prefill":
                cancelled = await self._prefill(job)
            else:
                cancelled = await self._speculate(job)
        except asyncio.CancelledError:
            # skipped: a real request arrived before it started (else: the loop is closing)
            if not job.cancel.is_set():
                raise
        except LoadFailure:
            pass
        except Exception:
            logger.debug("background %s failed for %s", job.kind, job.path, exc_info=True)
        finally:
            self._stats.active -= 1
            if cancelled:
                self._count(job.kind, cancelled=True)

    def _requests(self, job: _Background) -> list[CompletionRequest]:
        """The request at the job's cursor, then those at its fallback cursors."""
        service = self.service
        return [
            service.request_for(job.text, offset, job.path, job.language, job.settings)
            for offset in (job.offset, *job.fallbacks)
        ]

    async def _prefill(self, job: _Background) -> bool:
        """Prefill the KV cache for the job's cursor; True when it was cancelled."""
        options = self._requests(job)
        cancel = job.cancel

        def prefill(engine: Engine) -> tuple[CompletionResult, int]:
            chosen = next((r for r in options if _from_top(engine, r)), options[-1])
            result = engine.prefill(chosen, cancel, chunk=PREFETCH_CHUNK)
            if engine.cached_tokens > result.reused_tokens:
                # Set on the worker thread, so the next real run surely sees it.
                self._cached_before = result.reused_tokens
            return result, engine.cached_tokens

        future = self.service.host.run(prefill, cancel=cancel, name="prefetch", background=True)
        result, cached = await asyncio.wrap_future(future)
        self._stats.prefilled_tokens += max(0, cached - result.reused_tokens)
        return result.cancelled

    async def _speculate(self, job: _Background) -> bool:
        """Complete at the accepted suggestion's end into the cache; True when cancelled."""
        (request,) = self._requests(job)
        cancel = job.cancel

        def speculate(engine: Engine) -> CompletionResult:
            self._cached_before = None  # the cache will hold the speculation's prompt
            return engine.complete(request, cancel)

        future = self.service.host.run(speculate, cancel=cancel, name="speculate", background=True)
        outcome = await asyncio.wrap_future(future)
        if not outcome.cancelled and not failed_remotely(outcome):  # asked again next time
            self.service.cache.put(job.uri, job.text, job.offset, outcome.text, speculative=True)
        return outcome.cancelled


def _from_top(engine: Engine, request: CompletionRequest) -> bool:
    """Whether the prompt for ``request`` keeps the start of its prefix (the window was not
    cut or re-anchored at its top), so it shares its tokens with prompts of cursors above."""
    prompt = engine.prompt_for(request)
    body = prompt.prefix[len(prompt.header) :]
    return bool(body) and request.prefix.startswith(body[:256])
