"""The model worker: one dedicated daemon thread that runs every job touching the model.

Why not pygls' thread pool: that pool also runs the stdin reader, so a long generation there
could starve message reading (and ``$/cancelRequest`` would arrive late). Why one thread: the
engine, its KV cache and some tokenizers are not thread-safe. Why a daemon: when the client
disappears the process must exit even if a model load is still running.

Jobs are plain callables; each may carry a ``threading.Event``: a job whose event is set before
it starts is skipped (its future is cancelled) instead of occupying the model.

Two priorities: ordinary jobs (real requests, loads) run first-in first-out; *background* jobs
(prefetch, speculation) run only when no ordinary job is queued, and every newly submitted
ordinary job sets the cancel event of each queued and running background job, so a background
job gives way within one decoder layer (the engine checks its event per layer).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["ModelWorker"]

T = TypeVar("T")
logger = logging.getLogger(__name__)


@dataclass
class _Job:
    fn: Callable[[], Any]
    future: Future[Any]
    cancel: threading.Event | None
    name: str
    background: bool = False
    queued_at: float = field(default_factory=time.perf_counter)


class ModelWorker:
    """A single daemon thread executing submitted jobs: ordinary ones in order, then background."""

    def __init__(self, name: str = "codellama-model") -> None:
        self._queue: collections.deque[_Job | None] = collections.deque()
        self._background: collections.deque[_Job] = collections.deque()
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._busy_lock = threading.Lock()
        self._current: _Job | None = None
        self._started = False
        self._stopped = False

    def start(self) -> None:
        """Start the thread (idempotent)."""
        if not self._started:
            self._started = True
            self._thread.start()

    def submit(
        self,
        fn: Callable[[], T],
        *,
        cancel: threading.Event | None = None,
        name: str = "job",
        background: bool = False,
    ) -> Future[T]:
        """Queue ``fn``; the returned future resolves with its result (or exception).

        ``background``: low priority, runs only when no ordinary job waits, and any ordinary job
        submitted later sets its ``cancel`` event (required for background jobs): a skipped
        background job's future is cancelled, a running one sees its event set.
        """
        future: Future[T] = Future()
        if self._stopped:
            future.set_exception(RuntimeError("the model worker has stopped"))
            return future
        if background and cancel is None:
            raise ValueError("a background job needs a cancel event to be pre-empted")
        self.start()
        job = _Job(fn, future, cancel, name, background)
        with self._ready:
            if background:
                self._background.append(job)
            else:
                self._preempt_background()
                self._queue.append(job)
            self._ready.notify()
        return future

    def _preempt_background(self) -> None:
        """Cancel queued and running background jobs (an ordinary job arrived). Holds the lock."""
        for waiting in self._background:
            assert waiting.cancel is not None
            waiting.cancel.set()
        with self._busy_lock:
            running = self._current
        if running is not None and running.background and running.cancel is not None:
            running.cancel.set()

    @property
    def background_pending(self) -> int:
        """Background jobs queued (not yet started)."""
        with self._ready:
            return len(self._background)

    @property
    def busy(self) -> bool:
        """True while a job runs."""
        with self._busy_lock:
            return self._current is not None

    @property
    def current_job(self) -> str | None:
        """Name of the running job, if any."""
        with self._busy_lock:
            return self._current.name if self._current else None

    def stop(self) -> None:
        """Let the thread finish its current job and exit; later submits fail."""
        self._stopped = True
        with self._ready:
            self._queue.append(None)
            self._ready.notify()

    def _next(self) -> _Job | None:
        """The next job: ordinary first, else background (``None``: stop)."""
        with self._ready:
            while not self._queue and not self._background:
                self._ready.wait()
            if self._queue:
                job = self._queue.popleft()
                if job is None:  # stopping: queued background work is dropped
                    for dropped in self._background:
                        dropped.future.cancel()
                    self._background.clear()
            else:
                job = self._background.popleft()
            with self._busy_lock:  # under the queue lock: a pre-empting submit sees it
                self._current = job
            return job

    def _run(self) -> None:
        while (job := self._next()) is not None:
            if (job.cancel is not None and job.cancel.is_set()) or not (
                job.future.set_running_or_notify_cancel()
            ):
                if not job.future.done():
                    job.future.cancel()
                with self._busy_lock:
                    self._current = None
                continue
            try:
                job.future.set_result(job.fn())
            except BaseException as exc:  # the worker must survive anything a job raises
                logger.debug("model job %s failed", job.name, exc_info=True)
                job.future.set_exception(exc)
            finally:
                with self._busy_lock:
                    self._current = None
