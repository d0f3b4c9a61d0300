"""Helpers and data shared by the server tests (fixtures live in conftest.py).

Test modules import from here, never from ``conftest``: several test folders have a
conftest.py, and ``from conftest import ...`` picks whichever pytest imported last.

Status polling and ``didOpen`` come from tests/lsp_harness.py (shared with the refactor tests)
and are re-exported here for the server tests' imports.
"""

from __future__ import annotations

import textwrap

from lsp_harness import StartServer, open_document, poll_status, status, wait_for_state
from lsprotocol import types
from pytest_lsp import LanguageClient

__all__ = [
    "CORPUS",
    "StartServer",
    "inline",
    "inline_params",
    "open_document",
    "poll_status",
    "status",
    "wait_for_state",
]


CORPUS = [
    textwrap.dedent(
        '''
        """Geometry helpers."""
        import math


        class Point:
            def __init__(self, x: float, y: float) -> None:
                self.x = x
                self.y = y

            def distance(self, other: "Point") -> float:
                return math.hypot(self.x - other.x, self.y - other.y)


        def mean(values: list[float]) -> float:
            return sum(values) / len(values)


        def fib(n: int) -> int:
            if n < 2:
                return n
            return fib(n - 1) + fib(n - 2)
        '''
    )
] * 4
"""Training text of the tiny model's tokenizer (conftest.py); also a workspace file's content."""


def inline_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    """Params of an automatic inline completion request."""
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic
        ),
    )


async def inline(client: LanguageClient, uri: str, line: int, character: int) -> str:
    """The inline completion text ("" for an empty list)."""
    result = await client.text_document_inline_completion_async(inline_params(uri, line, character))
    assert result is not None
    items = result.items if isinstance(result, types.InlineCompletionList) else result
    return items[0].insert_text if items else ""
