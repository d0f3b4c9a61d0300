"""With the bundled pretrained model (slow): real Python completions and fast cancellation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from lsprotocol import types
from server_helpers import StartServer, inline, inline_params, open_document, status, wait_for_state

pytestmark = pytest.mark.slow

BUNDLED = "bundled:smollm2-135m"
PYTHON = 'def is_even(n: int) -> bool:\n    """Return True when n is even."""\n    return '


async def test_python_prefix_gets_a_completion(start_server: StartServer, tmp_path: Path) -> None:
    client = await start_server({"model": BUNDLED, "maxNewTokens": 16, "debounceMs": 0})
    report = await wait_for_state(client, "ready", "failed", timeout=600)
    assert report["model"]["state"] == "ready", report["model"]["error"]
    uri = (tmp_path / "numbers.py").as_uri()
    open_document(client, uri, PYTHON)
    text = await inline(client, uri, 2, 11)
    assert text.strip(), "the bundled model returned an empty completion"


async def test_cancelled_long_generation_frees_the_engine_fast(
    start_server: StartServer, tmp_path: Path
) -> None:
    client = await start_server({"model": BUNDLED, "maxNewTokens": 512, "debounceMs": 0})
    report = await wait_for_state(client, "ready", "failed", timeout=600)
    assert report["model"]["state"] == "ready", report["model"]["error"]
    uri = (tmp_path / "long.py").as_uri()
    # An empty line inside a class body: multi-line mode, a long generation.
    open_document(
        client,
        uri,
        "class Matrix:\n    def __init__(self, rows):\n        self.rows = rows\n\n    ",
    )
    pending = asyncio.ensure_future(
        client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 4, 4), msg_id="long-bundled"
        )
    )
    deadline = time.monotonic() + 120
    while not (await status(client))["model"]["busy"]:
        assert time.monotonic() < deadline, "generation never started"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    assert (await status(client))["model"]["busy"], "generation ended before it could be cancelled"
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="long-bundled"))
    started = time.perf_counter()
    while (await status(client))["model"]["busy"]:
        await asyncio.sleep(0.005)
    freed = time.perf_counter() - started
    assert freed < 0.2, f"engine busy {freed * 1000:.0f} ms after the cancel"
    with pytest.raises(Exception, match=r"(?i)cancel"):
        await pending
