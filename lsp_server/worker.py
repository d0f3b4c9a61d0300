"""The model worker: one dedicated daemon thread that runs every job touching the model.

Why not pygls' thread pool: that pool also runs the stdin reader, so a long generation there
could starve message reading (and ``$/cancelRequest`` would arrive late). Why one thread: the
engine, its KV cache and some tokenizers are not thread-safe. Why a daemon: when the client
disappears the process must exit even if a model load is still running.

Jobs are plain callables; each may carry a ``threading.Event``: a job whose event is set before
it starts is skipped (its future is cancelled) instead of occupying the model.
"""

from __future__ import annotations

import logging
import queue
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
    queued_at: float = field(default_factory=time.perf_counter)


class ModelWorker:
    """A single daemon thread executing submitted jobs in order."""

    def __init__(self, name: str = "codellama-model") -> None:
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
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
    ) -> Future[T]:
        """Queue ``fn``; the returned future resolves with its result (or exception)."""
        future: Future[T] = Future()
        if self._stopped:
            future.set_exception(RuntimeError("the model worker has stopped"))
            return future
        self.start()
        self._queue.put(_Job(fn, future, cancel, name))
        return future

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
        self._queue.put(None)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if (job.cancel is not None and job.cancel.is_set()) or not (
                job.future.set_running_or_notify_cancel()
            ):
                if not job.future.done():
                    job.future.cancel()
                continue
            with self._busy_lock:
                self._current = job
            try:
                job.future.set_result(job.fn())
            except BaseException as exc:  # the worker must survive anything a job raises
                logger.debug("model job %s failed", job.name, exc_info=True)
                job.future.set_exception(exc)
            finally:
                with self._busy_lock:
                    self._current = None
