"""Top-level blocks of a document: which one the cursor is in, cheaply, on every keystroke.

:func:`block_key` names the enclosing top-level block by its first line. The prefetcher
prefills when the cursor enters another block, and repository context is retrieved again only
then, so the context at the start of the prompt keeps its tokens (and the KV cache) while the
user types inside one block.
"""

from __future__ import annotations

__all__ = ["BLOCK_SCAN_CHARS", "block_key"]

BLOCK_SCAN_CHARS = 32768
"""How far above the cursor :func:`block_key` looks for the enclosing top-level line."""
_NOT_TOP_LEVEL = (")", "]", "}", "#", "//", "/*", "*", "@", '"""', "'''")


def block_key(text: str, offset: int) -> str:
    """The enclosing top-level block at ``offset``: its first line (``def f(x):``, ``class A:``).

    The nearest line above the cursor's line that starts in column 0 and is not a closing
    bracket, comment, decorator or docstring quote; "" when there is none within
    :data:`BLOCK_SCAN_CHARS`. The cursor's own line is not looked at, so typing a new
    top-level line keeps the key until Enter moves into its body. Cheap (a bounded backwards
    scan), so it runs on every keystroke.
    """
    end = text.rfind("\n", 0, offset)
    floor = max(0, offset - BLOCK_SCAN_CHARS)
    while end > floor:
        start = text.rfind("\n", floor, end) + 1
        if start == 0 and floor > 0:
            break  # the scan window cut this line: don't guess from a fragment
        line = text[start:end]
        if line[:1].strip() and not line.startswith(_NOT_TOP_LEVEL):
            return line.rstrip()[:200]
        end = start - 1
    return ""
