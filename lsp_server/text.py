"""Pure text helpers: LSP lines and positions in the negotiated encoding, cursor windows, binary
detection.

LSP positions count lines split at ``\\n``, ``\\r\\n`` or ``\\r`` only (not at the form feeds and
Unicode separators ``str.splitlines`` also breaks on) and characters in the negotiated
``positionEncoding``: ``utf-8`` bytes, ``utf-16`` code units (the default) or ``utf-32`` code
points. Every conversion here runs in C over the text before the position (finding the line
start) and over the cursor's line only up to the position (counting units): a completion at the
end of a 5 MB one-line non-ASCII document takes milliseconds, not the ≈ 1 s a per-character
Python loop took.

:func:`offset_at` is strict: a position outside the document is ``None`` (the caller answers
with an empty result), never silently clamped, so a stale request cannot complete at the wrong
place. :func:`clamped_offset` clamps like editors do, for applying ``didChange`` edits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ENCODINGS",
    "CursorContext",
    "clamped_offset",
    "cursor_context",
    "encoding_name",
    "line_span",
    "looks_binary",
    "offset_at",
    "position_at",
    "split_lines",
    "units",
]

ENCODINGS = ("utf-8", "utf-16", "utf-32")
"""Position encodings LSP 3.17 defines (``PositionEncodingKind`` values)."""

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_OTHER_BREAKS = re.compile("[\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
"""Characters ``str.splitlines`` breaks on but LSP does not."""
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_LF_LINES: dict[int, re.Pattern[str]] = {}
_ANY_LINES: dict[int, re.Pattern[str]] = {}
_LINE_CACHE = 256


def encoding_name(kind: object) -> str:
    """``"utf-8"``/``"utf-16"``/``"utf-32"`` for a ``PositionEncodingKind`` (enum or string);
    anything else is the LSP default ``"utf-16"``.

    ``str(PositionEncodingKind.Utf8)`` is ``"PositionEncodingKind.Utf8"`` on Python 3.11, so
    compare values, never ``str()`` the enum.
    """
    value = getattr(kind, "value", kind)
    return value if isinstance(value, str) and value in ENCODINGS else "utf-16"


def units(text: str, encoding: str = "utf-16") -> int:
    """Length of ``text`` in ``encoding`` code units (``utf-8``, ``utf-16``, ``utf-32``; anything
    else counts as UTF-16, the protocol's default).

    The one place the server counts position units (completions, refactor edits, the test
    client). A lone surrogate (half of a broken pair) is counted, never an error.
    """
    if encoding == "utf-32" or text.isascii():
        return len(text)
    codec, width = _codec(encoding)
    return len(text.encode(codec, "surrogatepass")) // width


def _codec(encoding: str) -> tuple[str, int]:
    """The Python codec for a position encoding other than ``utf-32``, and its bytes per unit."""
    return ("utf-8", 1) if encoding == "utf-8" else ("utf-16-le", 2)


def _index(line: str, count: int, encoding: str, *, clamp: bool) -> int | None:
    """Index into ``line`` (no line break) of ``count`` code units.

    Past the end: ``None``, or ``len(line)`` with ``clamp``. Inside a character (half a
    surrogate pair, part of a UTF-8 sequence): ``None``, or that character's start with
    ``clamp``. Every character is at least one unit, so only ``line[:count]`` is encoded.
    """
    if encoding == "utf-32" or line.isascii():
        if count <= len(line):
            return count
        return len(line) if clamp else None
    head = line[:count]
    codec, width = _codec(encoding)
    data = head.encode(codec, "surrogatepass")
    if len(data) < count * width:  # the whole line is shorter than ``count`` units
        return len(line) if clamp else None
    cut = data[: count * width]
    try:
        return len(cut.decode(codec))
    except UnicodeDecodeError:  # the position splits a character
        return len(cut.decode(codec, "ignore")) if clamp else None


def _line_pattern(line: int, cr: bool) -> re.Pattern[str]:
    cache = _ANY_LINES if cr else _LF_LINES
    pattern = cache.get(line)
    if pattern is None:
        if len(cache) >= _LINE_CACHE:
            cache.clear()
        # ``\r(?!\n)``: without it, backtracking may count one ``\r\n`` as two breaks.
        breaks = r"(?:[^\r\n]*(?:\r\n|\r(?!\n)|\n))" if cr else r"(?:[^\n]*\n)"
        pattern = cache[line] = re.compile(f"{breaks}{{{line}}}")
    return pattern


def line_span(text: str, line: int) -> tuple[int, int] | None:
    """``(start, end)`` offsets of ``line`` (``end`` before its line break); ``None`` when the
    document has fewer lines. The line after a final line break exists (it is empty)."""
    if line < 0:
        return None
    start = 0
    cr = "\r" in text
    if line > 0:
        # One regex match walks the lines in C: fast and allocation-free on 10 MB documents.
        match = _line_pattern(line, cr).match(text)
        if match is None:
            return None
        start = match.end()
    end = text.find("\n", start)
    end = len(text) if end == -1 else end
    if cr and (cr_end := text.find("\r", start, end)) != -1:
        end = cr_end
    return start, end


def offset_at(text: str, line: int, character: int, encoding: str = "utf-16") -> int | None:
    """Offset into ``text`` of an LSP position, or ``None`` when it lies outside the document.

    The position just past the last character of a line (before its line break) is valid; so
    is ``(last line + 1, 0)`` when the text ends with a line break.
    """
    if character < 0 or (span := line_span(text, line)) is None:
        return None
    start, end = span
    index = _index(text[start:end], character, encoding, clamp=False)
    return None if index is None else start + index


def clamped_offset(text: str, line: int, character: int, encoding: str = "utf-16") -> int:
    """Offset of an LSP position clamped into the document, as editors apply edits: past the
    last line is the end of the text, past a line's end is that end, inside a character is its
    start."""
    if line < 0:
        return 0
    span = line_span(text, line)
    if span is None:
        return len(text)
    start, end = span
    index = _index(text[start:end], max(0, character), encoding, clamp=True)
    return start + (end - start if index is None else index)


def position_at(text: str, offset: int, encoding: str = "utf-16") -> tuple[int, int]:
    """The LSP ``(line, character)`` of ``offset`` (clamped into ``text``)."""
    offset = max(0, min(offset, len(text)))
    if 0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n":
        offset -= 1  # inside a \r\n break: the end of the line before it
    if "\r" in text:
        line = len(_LINE_BREAK.findall(text, 0, offset))
        start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    else:
        line = text.count("\n", 0, offset)
        start = text.rfind("\n", 0, offset) + 1
    return line, units(text[start:offset], encoding)


def split_lines(text: str) -> list[str]:
    """``text`` split into lines keeping their endings, breaking only where LSP does.

    ``str.splitlines`` also breaks on form feeds and Unicode separators, which would put our
    line numbers out of step with the editor's; without those it gives the same lines, faster.
    """
    if not _OTHER_BREAKS.search(text):
        return text.splitlines(keepends=True)
    lines: list[str] = []
    start = 0
    for match in _LINE_BREAK.finditer(text):
        lines.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        lines.append(text[start:])
    return lines


def looks_binary(text: str, sample: int = 8192) -> bool:
    """True for text that is not source code: NUL bytes or many control characters."""
    head = text[:sample]
    if "\x00" in head:
        return True
    return len(head) > 0 and len(_CONTROL.findall(head)) > 0.05 * len(head)


@dataclass(frozen=True)
class CursorContext:
    """The text around a cursor, cut to a window the prompt builder can afford to tokenize."""

    prefix: str
    suffix: str
    line_prefix: str
    """Text from the start of the cursor's line to the cursor (for completion item ranges)."""


def cursor_context(text: str, offset: int, *, window_chars: int) -> CursorContext:
    """Prefix/suffix around ``offset``, keeping at most ``window_chars`` on each side.

    Cuts happen at line starts so the prompt builder never sees half a line at the edge.
    """
    lo = max(0, offset - window_chars)
    if lo > 0:
        newline = text.find("\n", lo, offset)
        lo = newline + 1 if newline != -1 else lo
    hi = min(len(text), offset + window_chars)
    if hi < len(text):
        newline = text.rfind("\n", offset, hi)
        hi = newline + 1 if newline != -1 else hi
    line_start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    return CursorContext(text[lo:offset], text[offset:hi], text[line_start:offset])
