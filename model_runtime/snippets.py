"""Snippets of indexed files: the :class:`Snippet` a prompt gets, the indexed text it is cut
from (:class:`IndexedFile`), where a definition ends, and how much of a snippet the text around
the cursor already holds (llama.vim's rule: snippets that repeat the cursor's own lines "make
the model repeat").
"""

from __future__ import annotations

import itertools
import re
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from model_runtime.code_terms import definitions

DEFINITION_LINES = 24
"""At most this many lines of a definition snippet (the signature and the start of the body)."""
LOCAL_WINDOW_CHARS = 3_000
"""Characters before the cursor that the prompt surely shows (the default budget's prefix
share, ~860 tokens, at ~3.5 characters per token). A name used near the cursor whose definition
in the current file lies before them is out of the prompt's sight: its definition becomes a
snippet like another file's (constants and helpers at the top of a long module)."""
FAR_SCAN_CHARS = 200_000
"""Of the current file's text before the window, at most this much is scanned for definitions."""


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


OUTLINE_LINES = 40
"""At most this many lines of a class outline (:func:`definition_text`)."""
_CLASS = re.compile(r"^[ \t]*(?:export\s+)?class\s")
_MEMBER_DEF = re.compile(r"^[ \t]*(?:async\s+)?def\s")
_DOCSTRING_QUOTES = ('"""', "'''", 'r"""', "r'''")


def definition_text(info: IndexedFile, start: int) -> str:
    """The snippet for the definition at line ``start``: a function's first lines (up to
    :data:`DEFINITION_LINES`, :func:`definition_end`), or a Python class's *outline*: its
    header, the first line of its docstring, class-level fields and decorators, and every
    method's signature with ``...`` for the body. A completion after ``obj.`` then sees every
    member, not the first screenful of a long class (at most :data:`OUTLINE_LINES` lines)."""
    first = info.lines(start, start + 1)
    if not _CLASS.match(first) or not first.rstrip().endswith(":"):
        return info.lines(start, definition_end(info, start))
    indent = indent_width(first)
    member: int | None = None  # the indentation of the class body, once seen
    kept = [first]
    signature: list[str] = []  # a method's signature lines until the one ending with ":"
    in_docstring = False
    number = start + 1
    while number < info.n_lines and len(kept) < OUTLINE_LINES:
        line = info.lines(number, number + 1)
        number += 1
        stripped = line.strip()
        if not stripped:
            continue
        width = indent_width(line)
        if width <= indent and not in_docstring:
            break
        member = width if member is None else member
        if in_docstring:
            in_docstring = not any(q in stripped for q in _DOCSTRING_QUOTES)
            continue
        if signature:
            signature.append(line)
        elif width != member:
            continue  # a method body
        elif _MEMBER_DEF.match(line):
            signature = [line]
        elif stripped.startswith(_DOCSTRING_QUOTES):
            if len(kept) == 1:
                kept.append(line)  # the class docstring's first line
            quote = stripped[:4] if stripped.startswith("r") else stripped[:3]
            in_docstring = stripped.count(quote[-3:]) == 1 and len(stripped) >= len(quote)
            if in_docstring and len(kept) == 2 and kept[1] is line:
                kept[1] = line.rstrip() + ' ..."""\n' if quote.endswith('"') else line
            continue
        else:
            if not stripped.startswith("#"):  # a field, a decorator, a nested class header
                kept.append(line)
            continue
        if signature[-1].rstrip().endswith(":"):
            pieces = [piece.strip() for piece in signature]
            joined = signature[0].rstrip()
            for before, piece in itertools.pairwise(pieces):
                joined += (" " if before.endswith(",") else "") + piece
            kept.append(joined.replace(", )", ")") + " ...\n")
            signature = []
    return "".join(kept)


def indent_width(line: str) -> int:
    """Width of a line's leading whitespace (tabs count 4)."""
    body = line.lstrip(" \t")
    return len(line[: len(line) - len(body)].expandtabs(4))


def own_lines(before: Sequence[str], after: Sequence[str]) -> set[str]:
    """The non-trivial lines around the cursor, stripped (what a snippet should not repeat)."""
    return {line.strip() for line in (*before, *after) if len(line.strip()) > 3}


def own_share(text: str, own: set[str]) -> float:
    """Share of the snippet's non-trivial lines that already appear around the cursor."""
    lines = [line.strip() for line in text.split("\n") if len(line.strip()) > 3]
    if not lines:
        return 1.0
    return sum(line in own for line in lines) / len(lines)


def far_part(prefix: str, skip: Iterable[str] = ()) -> IndexedFile | None:
    """The current file's text before the prompt's window (:data:`LOCAL_WINDOW_CHARS`), cut
    at a line start, with its definitions but those of ``skip``; ``None`` when the whole prefix
    is in sight or it defines nothing. Line numbers are counted from the scanned part's start
    (they only order snippets)."""
    end = prefix.rfind("\n", 0, max(0, len(prefix) - LOCAL_WINDOW_CHARS))
    if end <= 0:
        return None
    start = prefix.find("\n", max(0, end - FAR_SCAN_CHARS)) + 1 if end > FAR_SCAN_CHARS else 0
    text = prefix[start : end + 1]
    info = IndexedFile(text, None, line_offsets(text))
    skipped = set(skip)
    info.definitions = {n: at for n, at in definitions(text).items() if n not in skipped}
    return info if info.definitions else None
