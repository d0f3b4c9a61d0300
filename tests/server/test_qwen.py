"""The default CPU model, ``bundled:qwen2.5-coder-0.5b``, served for real (slow).

One client profile only: the model takes a few seconds to load, and the profiles' differences
are covered by the tiny-model tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lsp_harness import poll_status
from server_helpers import StartServer, inline, open_document, status, wait_for_state

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


STORE = '''"""The store: the one place that changes stock."""

from __future__ import annotations


class Item:
    """A sellable item."""

    sku: str
    price: int


class InventoryStore:
    """Items and the log of every stock movement."""

    def __init__(self) -> None:
        self._items: dict[str, Item] = {}

    def add_item(self, item: Item) -> None:
        """Register a new item."""
        self._items[item.sku] = item

    def get_item(self, sku: str) -> Item:
        """Return the item with this SKU."""
        return self._items[sku]

    def ship(self, sku: str, units: int) -> None:
        """Ship units of an item."""
'''
AUDIT = (
    '"""Audit helpers."""\n\n'
    "from store import InventoryStore\n\n\n"
    "def shipped_value(store: InventoryStore, sku: str, units: int) -> int:\n"
    '    """The value of the units of one SKU shipped so far."""\n'
    "    item = store."
)


@pytest.mark.parametrize("profile", ["neovim"])
async def test_qwen_uses_a_method_defined_in_another_file(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Issue 10's end-to-end case: the right answer (``get_item``) is only in another file of
    the workspace; the repository context (the outline of the receiver's class) brings it."""
    (tmp_path / "store.py").write_text(STORE, encoding="utf-8")
    client = await start_server({"model": QWEN, "maxNewTokens": 16, "debounceMs": 0})
    report = await wait_for_state(client, "ready", "failed", timeout=900)
    assert report["model"]["state"] == "ready", report["model"]["error"]
    await poll_status(
        client,
        lambda r: bool((r["features"]["dataset"]["repoContext"]["index"] or {}).get("files")),
        timeout=60,
        waiting_for="the index to hold store.py",
    )
    uri = (tmp_path / "audit.py").as_uri()
    open_document(client, uri, AUDIT)
    lines = AUDIT.split("\n")
    completion = await inline(client, uri, len(lines) - 1, len(lines[-1]))
    last = (await status(client))["features"]["dataset"]["repoContext"]["lastPrompt"]
    sources = [(s["path"], s.get("name")) for s in last["snippets"]]
    assert sources[0] == ("store.py", "InventoryStore"), sources
    assert completion.startswith("get_item(sku)"), completion
