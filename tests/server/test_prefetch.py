"""Being ready before the user asks: background prefill and speculative next suggestions.

Unit level: the model worker runs real jobs before queued background jobs and pre-empts a
running one; ``Engine.prefill`` stops within one decoder layer and keeps the passes it finished.
End to end (the real server over stdio, both client profiles): a real request arriving during a
prefetch is served first and the prefetch is cancelled; after ``didOpen`` the first completion
reuses the prefetched tokens; accepting a suggestion and asking at the new cursor is answered
from the speculative cache without a model run (and equals what the model says there).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from server_helpers import CORPUS, StartServer, inline, open_document, poll_status, status

from lsp_server.completion_service import PREFETCH_CHUNK, block_key, open_cursor
from lsp_server.worker import ModelWorker

DOC = CORPUS[0].lstrip("\n")
"""Geometry helpers: a small Python file (classes and functions)."""


# -- unit level --------------------------------------------------------------------------------


def test_worker_runs_real_jobs_first_and_preempts_background() -> None:
    worker = ModelWorker("test-worker")
    order: list[str] = []
    gate = threading.Event()
    running = threading.Event()
    background_cancel = threading.Event()
    queued_cancel = threading.Event()

    def blocker() -> None:
        running.set()
        gate.wait(10)
        order.append("blocker")

    def long_background() -> str:
        running.set()
        deadline = time.monotonic() + 10
        while not background_cancel.is_set() and time.monotonic() < deadline:
            time.sleep(0.005)  # the engine checks its event once per decoder layer
        order.append("background")
        return "stopped" if background_cancel.is_set() else "ran out"

    with pytest.raises(ValueError, match="cancel event"):
        worker.submit(lambda: None, background=True)

    # Queued background work waits behind ordinary jobs submitted after it.
    worker.submit(blocker, name="blocker")
    assert running.wait(5)
    queued = worker.submit(lambda: order.append("queued"), cancel=queued_cancel, background=True)
    real = worker.submit(lambda: order.append("real"), name="real")
    assert queued_cancel.is_set(), "a real job must cancel queued background work"
    gate.set()
    real.result(5)
    assert queued.cancelled()
    assert order == ["blocker", "real"]

    # A running background job sees its event set as soon as an ordinary job is submitted.
    running.clear()
    background = worker.submit(long_background, cancel=background_cancel, background=True)
    assert running.wait(5)
    started = time.perf_counter()
    worker.submit(lambda: order.append("real 2"), name="real 2").result(5)
    assert background.result(5) == "stopped"
    assert time.perf_counter() - started < 1.0
    assert order[-2:] == ["background", "real 2"]
    assert worker.background_pending == 0
    worker.stop()


def test_engine_prefill_warms_cache_and_stops_within_a_layer(tiny_model: Path) -> None:
    from model_runtime.engine import CompletionRequest, Engine
    from model_runtime.loader import load_model

    engine = Engine(load_model(str(tiny_model), device="cpu"), context_tokens=4096)
    text = DOC * 3
    cursor = len(text) - 40
    at_end = CompletionRequest("geo.py", text, "", max_new_tokens=4)
    here = CompletionRequest("geo.py", text[:cursor], text[cursor:], max_new_tokens=4)

    # The prefill holds exactly the prompt complete() would build; a later cursor reuses it.
    result = engine.prefill(at_end, chunk=32)
    assert result.stop_reason == "prefill" and result.tokens == 0
    assert engine.cached_tokens == result.prompt_tokens == len(engine.prompt_for(at_end).input_ids)
    warm = engine.complete(here)
    assert warm.reused_tokens > warm.prompt_tokens // 2
    engine.reset_cache()
    cold = engine.complete(here)
    assert cold.reused_tokens == 0 and cold.text == warm.text  # reuse changes nothing visible

    # Cancelled during its 4th pass (layer 1 of 2): the 3 finished passes stay cached.
    engine.reset_cache()
    cancel = threading.Event()
    layers = [m for m in engine.loaded.model.modules() if type(m).__name__.endswith("DecoderLayer")]
    calls = {"first": 0, "after_cancel": 0}

    def first_layer(module: Any, args: Any) -> None:
        calls["first"] += 1
        if calls["first"] == 4:
            cancel.set()

    def second_layer(module: Any, args: Any) -> None:
        if cancel.is_set():
            calls["after_cancel"] += 1

    # Registered after the engine's own hooks (installed on the first call above), so the first
    # layer's own cancel check has already passed when ``first_layer`` sets the event.
    hooks = [
        layers[0].register_forward_pre_hook(first_layer),
        layers[1].register_forward_pre_hook(second_layer),
    ]
    try:
        stopped = engine.prefill(at_end, cancel, chunk=32)
    finally:
        for hook in hooks:
            hook.remove()
    assert stopped.stop_reason == "cancelled" and stopped.cancelled
    assert calls["after_cancel"] == 0, "the next decoder layer must not run after a cancel"
    assert engine.cached_tokens == 3 * 32
    assert all(layer.get_seq_length() == 3 * 32 for layer in engine._cache.layers)
    again = engine.complete(here)
    assert again.reused_tokens == 3 * 32 and again.text == warm.text


def test_block_key_and_open_cursor() -> None:
    text = (
        "import x\n\n@dec\ndef f(a):\n    return a\n\n\nclass B:\n    def g(self):\n        pass\n"
    )
    assert block_key(text, 3) == ""
    assert block_key(text, text.index("return")) == "def f(a):"
    assert block_key(text, text.index("pass")) == "class B:"
    assert block_key(text, text.index("class")) == "def f(a):"  # its own line is not looked at
    assert open_cursor(text, 1000)[0] == len(text)  # then earlier fallbacks
    big = "x = 1\n" * 2000
    offsets = open_cursor(big, 100)
    assert offsets[0] <= 300 and all(big[o - 1] == "\n" for o in offsets)
    assert offsets == sorted(offsets, reverse=True)


# -- end to end ----------------------------------------------------------------------------------


def _insert(
    client: LanguageClient, uri: str, version: int, line: int, char: int, text: str
) -> None:
    here = types.Position(line=line, character=char)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=here, end=here), text=text
                )
            ],
        )
    )


def _configure(client: LanguageClient, **settings: Any) -> None:
    client.protocol.notify(
        types.WORKSPACE_DID_CHANGE_CONFIGURATION,
        types.DidChangeConfigurationParams(settings={"codellama": settings}),
    )


async def _background_idle(client: LanguageClient, **at_least: int) -> dict[str, Any]:
    """Wait until the background counters reach ``at_least`` and no background job is alive."""

    def done(report: dict[str, Any]) -> bool:
        prefetch = report["completions"]["prefetch"]
        reached = all(prefetch[key] >= value for key, value in at_least.items())
        return reached and prefetch["active"] == 0 and not report["model"]["busy"]

    report = await poll_status(client, done, timeout=60, waiting_for=f"background {at_least}")
    return dict(report["completions"])


async def test_open_prefetch_and_tab_chain(
    start_server: StartServer, endless_model: Path, tmp_path: Path
) -> None:
    # The steered model always suggests something (a random one may legitimately say nothing).
    client = await start_server(
        {"model": str(endless_model), "maxNewTokens": 6, "debounceMs": 0, "contextTokens": 4096}
    )
    await poll_status(client, lambda r: r["model"]["state"] == "ready", timeout=120)
    lines = DOC.split("\n")
    line = len(lines) - 2  # "    return fib(n - 1) + fib(n - 2)": complete at its end
    char = len(lines[line])

    # didOpen prefills in the background; the first completion reuses those tokens.
    uri = (tmp_path / "geometry.py").as_uri()
    open_document(client, uri, DOC)
    stats = await _background_idle(client, prefills=1)
    assert stats["prefetch"]["prefillsCancelled"] == 0 and stats["prefetch"]["prefilledTokens"] > 0
    first = await inline(client, uri, line, char)
    stats = (await status(client))["completions"]
    assert first and stats["completions"] == 1
    assert stats["prefetch"]["hits"] == 1 and stats["prefetch"]["misses"] == 0
    assert stats["lastReusedTokens"] > stats["lastPromptTokens"] // 2
    warm_reused = stats["lastReusedTokens"]

    # Tab chain: the completion after each accepted suggestion is already in the cache.
    shown, version, current = first, 1, lines[line]
    for step in (1, 2):
        stats = await _background_idle(client, speculations=step)
        assert stats["prefetch"]["speculationsCancelled"] == 0
        model_runs, hits = stats["completions"], stats["cacheHits"]
        version += 1
        _insert(client, uri, version, line, char, shown)  # the user presses Tab
        current += shown
        char += len(shown)  # one line, ASCII: UTF-16 and UTF-8 columns agree
        started = time.perf_counter()
        shown = await inline(client, uri, line, char)
        elapsed = time.perf_counter() - started
        stats = (await status(client))["completions"]
        assert shown, f"step {step}: no suggestion after accepting"
        assert stats["completions"] == model_runs, "the model ran for an accepted suggestion"
        assert stats["cacheHits"] == hits + 1
        assert stats["prefetch"]["speculativeHits"] == step
        assert stats["prefetch"]["speculativeMisses"] == 0
        assert elapsed < 5.0
    await _background_idle(client, speculations=3)

    # What the cache answered is what the model says at that cursor (prefetch off, fresh open).
    _configure(client, maxNewTokens=6, debounceMs=0, contextTokens=4096, prefetch=False)
    await poll_status(client, lambda r: r["settings"]["prefetch"] is False, timeout=20)
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    reopened = lines.copy()
    reopened[line] = current
    open_document(client, uri, "\n".join(reopened))
    before = (await status(client))["completions"]
    fresh = await inline(client, uri, line, char)
    after = (await status(client))["completions"]
    assert after["completions"] == before["completions"] + 1  # a real model run this time
    assert after["prefetch"]["prefills"] == before["prefetch"]["prefills"]  # prefetch is off
    assert fresh == shown

    # Baseline in the same server: without prefetch, a new file's first completion reuses
    # only what the previous prompt happened to share (the FIM token and the path's start).
    cold_uri = (tmp_path / "geometry_copy.py").as_uri()
    open_document(client, cold_uri, DOC)
    assert await inline(client, cold_uri, len(lines) - 2, len(lines[line]))
    cold = (await status(client))["completions"]
    assert cold["lastReusedTokens"] < warm_reused // 2


async def test_real_request_during_prefetch_is_served_first(
    start_server: StartServer, endless_model: Path, tmp_path: Path
) -> None:
    client = await start_server(
        {"model": str(endless_model), "maxNewTokens": 4, "debounceMs": 0, "contextTokens": 7000}
    )
    await poll_status(client, lambda r: r["model"]["state"] == "ready", timeout=120)
    # A file long enough that prefilling it takes seconds even for the tiny model.
    big = "".join(DOC.replace("Point", f"Point{i}").replace("fib", f"fib{i}") for i in range(24))
    uri = (tmp_path / "big.py").as_uri()
    open_document(client, uri, big)
    await poll_status(
        client,
        lambda r: r["model"]["currentJob"] == "prefetch",
        timeout=30,
        interval=0.01,
        waiting_for="the background prefill to start",
    )
    # Let it finish a pass or two, not all (the prompt is thousands of tokens, a pass is one
    # chunk): on a quiet or a loaded machine alike, wait for the KV cache to hold a pass.
    await poll_status(
        client,
        lambda r: (
            r["model"]["cachedTokens"] >= PREFETCH_CHUNK  # more than the warm-up's
            or r["model"]["currentJob"] != "prefetch"
        ),
        timeout=30,
        interval=0.01,
        waiting_for="the background prefill's first pass",
    )
    rows = big.split("\n")
    row = rows.index("    return sum(values) / len(values)")  # in the first copy's ``mean``
    answer = await inline(client, uri, row, len(rows[row]))  # a real request
    report = await status(client)
    prefetch = report["completions"]["prefetch"]
    assert answer, "the real request was not served"
    assert prefetch["prefills"] == 1 and prefetch["prefillsCancelled"] == 1, prefetch
    assert report["completions"]["completions"] == 1
    # The prefill did not resume after the real request (it was cancelled, not postponed);
    # the worker may already compute the suggestion that follows the one just shown.
    assert report["model"]["currentJob"] in (None, "speculate")
    # A cancelled prefill still warmed the cache: the request reused its finished passes.
    assert prefetch["hits"] == 1 and prefetch["misses"] == 0, prefetch
    assert report["completions"]["lastReusedTokens"] > 0

    # An edit in another top-level block starts a prefill there; more edits in it do not.
    await _background_idle(client)
    far = rows.index("    return fib20(n - 1) + fib20(n - 2)")
    _insert(client, uri, 2, far, len(rows[far]), " ")
    stats = await _background_idle(client, prefills=2)
    assert stats["prefetch"]["prefills"] == 2
    _insert(client, uri, 3, far, len(rows[far]) + 1, "+")
    await asyncio.sleep(0.1)
    stats = await _background_idle(client)
    assert stats["prefetch"]["prefills"] == 2
    assert await inline(client, uri, far, len(rows[far]) + 2)
    stats = (await status(client))["completions"]
    assert stats["prefetch"]["hits"] == 2, stats["prefetch"]
    assert stats["lastReusedTokens"] > stats["lastPromptTokens"] // 2
