"""The model host restarts a managed llama.cpp server that died on its own (fakes, fast).

The real server is killed in ``tests/server/test_engine_backend.py`` (slow) between two requests;
here the server dies *during* a request, which a real kill cannot time: the host sees the
refused request and the ended process, starts the server again and sends the request again, once;
a server that dies at every start is tried again at most once per ``REVIVE_INTERVAL_S``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from lsp_server.model_host import LoadState, ModelHost
from lsp_server.worker import ModelWorker


class FakeServer:
    """A managed server's process as the host sees it: alive or ended, started again."""

    def __init__(self) -> None:
        self.alive = True
        self.starts = 0
        self.start_fails = False

    @property
    def pid(self) -> int | None:
        return 4242 + self.starts if self.alive else None

    returncode = -9

    def exited(self, timeout_s: float = 0.0) -> bool:
        return not self.alive

    def stop(self) -> None:
        self.alive = False


class FakeEngine:
    """Answers ``"ok"`` while the server lives; ``die_next`` makes the next call kill it."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.last_error: str | None = None
        self.die_next = False
        self.calls = 0

    def call(self) -> str:
        self.calls += 1
        if self.die_next:
            self.die_next = False
            self.server.alive = False
        if not self.server.alive:
            self.last_error = "the engine at http://127.0.0.1:1 is unreachable"
            return ""
        self.last_error = None
        return "ok"

    def adapter_loader(self, adapter: str | None) -> None:
        """What ``LlamaServer._load_adapter`` does: (re)start the process with ``adapter``."""
        self.server.starts += 1
        self.server.alive = not self.server.start_fails


@pytest.fixture
def host() -> Iterator[tuple[ModelHost, FakeEngine, FakeServer]]:
    worker = ModelWorker()
    host = ModelHost(worker)
    server = FakeServer()
    engine = FakeEngine(server)
    fake: Any = host
    fake._engine, fake._server = engine, server
    host.backend, host.state = "llama.cpp", LoadState.READY
    try:
        yield host, engine, server
    finally:
        worker.stop()


def ask(host: ModelHost, cancel: threading.Event | None = None) -> str:
    result: str = host.run(lambda engine: engine.call(), cancel=cancel).result(timeout=10)
    return result


def test_a_server_dead_before_a_request_is_started_first(host: Any) -> None:
    host, engine, server = host
    server.alive = False
    assert ask(host) == "ok"
    assert server.starts == 1 and engine.calls == 1


def test_a_server_dying_under_a_request_is_started_and_asked_again(host: Any) -> None:
    host, engine, server = host
    engine.die_next = True
    assert ask(host) == "ok"
    assert server.starts == 1 and engine.calls == 2


def test_no_second_try_for_a_request_cancelled_meanwhile(host: Any) -> None:
    host, engine, server = host
    engine.die_next = True
    cancel = threading.Event()

    def call_and_cancel(engine: FakeEngine) -> str:
        text = engine.call()
        cancel.set()  # the user typed on while the request failed
        return text

    assert host.run(call_and_cancel, cancel=cancel).result(timeout=10) == ""
    assert server.starts == 1 and server.alive and engine.calls == 1


def test_a_server_that_cannot_start_is_tried_once_per_interval(host: Any) -> None:
    host, engine, server = host
    server.start_fails = True
    engine.die_next = True
    assert ask(host) == ""
    assert ask(host) == ""
    assert server.starts == 1 and engine.calls == 2  # no restart storm, no retry loop
