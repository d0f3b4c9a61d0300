"""Snippets of indexed files: the :class:`Snippet` a prompt gets, the indexed text it is cut
from (:class:`IndexedFile`), where a definition ends, and how much of a snippet the text around
the cursor already holds (llama.vim's rule: snippets that repeat the cursor's own lines "make
the model repeat").
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DEFINITION_LINES = 24
"""At most this many lines of a definition snippet (the signature and the start of the body)."""


@dataclass(frozen=True)
class Snippet:
    """A piece of another file for the prompt."""

    path: str
    """Workspace-relative path of the file it comes from."""
    text: str
    """The lines, each ending with a newline."""
    start_line: int
    """0-based line of the file where ``text`` starts."""
    reason: str
    """``definition`` (of a name used near the cursor) or ``similar`` (BM25 window)."""
    score: float = 0.0
    name: str = ""
    """For definitions: the name looked up."""

    def as_json(self) -> dict[str, Any]:
        """The snippet's source, for ``codellama.status`` (text left out)."""
        lines = self.text.count("\n")
        return {
            "path": self.path,
            "lines": f"{self.start_line + 1}-{self.start_line + lines}",
            "reason": self.reason,
            **({"name": self.name} if self.name else {}),
        }


@dataclass
class IndexedFile:
    """What the index holds of one file: its text by lines, its chunks, definitions, imports."""

    content: str
    language: str | None
    offsets: array[int]
    """Character offset of each line start, plus ``len(content)``."""
    chunks: list[int] = field(default_factory=list)
    definitions: dict[str, list[int]] = field(default_factory=dict)
    imports: tuple[str, ...] = ()

    @property
    def n_lines(self) -> int:
        """Lines of the file."""
        return len(self.offsets) - 1

    def lines(self, start: int, end: int) -> str:
        """Lines ``start`` to ``end`` (exclusive), the last one ending with a newline."""
        end = min(end, self.n_lines)
        text = self.content[self.offsets[start] : self.offsets[end]]
        return text if text.endswith("\n") or not text else text + "\n"


def line_offsets(content: str) -> array[int]:
    """Character offset of each line start of ``content``, plus ``len(content)``."""
    offsets = array("i", [0])
    offsets.extend(m.end() for m in re.finditer("\n", content))
    if offsets[-1] != len(content):
        offsets.append(len(content))
    return offsets


def definition_end(info: IndexedFile, start: int) -> int:
    """End line (exclusive) of the definition at ``start``: until the indentation returns."""
    first = info.lines(start, start + 1)
    indent = len(first) - len(first.lstrip())
    end = start + 1
    limit = min(info.n_lines, start + DEFINITION_LINES)
    while end < limit:
        line = info.lines(end, end + 1)
        stripped = line.strip()
        if stripped and len(line) - len(line.lstrip()) <= indent:
            if stripped[:1] in "})]":
                end += 1
            break
        end += 1
    while end > start + 1 and not info.lines(end - 1, end).strip():
        end -= 1
    return end


def own_lines(before: Sequence[str], after: Sequence[str]) -> set[str]:
    """The non-trivial lines around the cursor, stripped (what a snippet should not repeat)."""
    return {line.strip() for line in (*before, *after) if len(line.strip()) > 3}


def own_share(text: str, own: set[str]) -> float:
    """Share of the snippet's non-trivial lines that already appear around the cursor."""
    lines = [line.strip() for line in text.split("\n") if len(line.strip()) > 3]
    if not lines:
        return 1.0
    return sum(line in own for line in lines) / len(lines)
