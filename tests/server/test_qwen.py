"""The default CPU model, ``bundled:qwen2.5-coder-0.5b``, served for real (slow).

One client profile only: the model takes a few seconds to load, and the profiles' differences
are covered by the tiny-model tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from server_helpers import StartServer, inline, open_document, wait_for_state

pytestmark = pytest.mark.slow

QWEN = "bundled:qwen2.5-coder-0.5b"


@pytest.mark.parametrize("profile", ["neovim"])
async def test_qwen_completes_a_function_body(start_server: StartServer, tmp_path: Path) -> None:
    client = await start_server({"model": QWEN, "maxNewTokens": 24, "debounceMs": 0})
    report = await wait_for_state(client, "ready", "failed", timeout=900)
    model = report["model"]
    assert model["state"] == "ready", model["error"]
    assert model["template"] == "qwen"  # native FIM tokens, detected from the tokenizer
    assert model["dtypeReason"].startswith(("auto:", model["dtype"]))
    uri = (tmp_path / "numbers.py").as_uri()
    text = (
        "def is_even(n: int) -> bool:\n"
        '    """Return True when n is even."""\n'
        "    return \n"
        "\n\n"
        "print(is_even(4))\n"
    )
    open_document(client, uri, text)
    completion = await inline(client, uri, 2, 11)
    assert completion.replace(" ", "") == "n%2==0", completion
