"""Pure stop rules and post-processing for completions (no torch; unit-tested with tables).

Vocabulary: the *cursor line* is the document line holding the cursor; ``line_prefix`` is its
text before the cursor, ``line_suffix`` its text after. A completion is inserted at the cursor.

- :func:`wants_multiline`: one line when the cursor is mid-line; a block when the cursor ends a
  block opener (``:`` / ``{`` ...) or sits on an empty line.
- :func:`truncate_completion`: where generation can stop (applied while decoding).
- :func:`cut_repetition`: a completion caught in a loop (``selfselfself``, the same line again and
  again) is cut after the first copy of the repeated unit, and generation stops.
- :func:`postprocess`: drop text that repeats the suffix / the next line, drop closing brackets
  the suffix already supplies (auto-closed by the editor, or on the next line).
"""

from __future__ import annotations

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {v: k for k, v in OPENERS.items()}
_BLOCK_OPENERS = (":", "{", "=>", "->", " do", " then")
"""Line endings after which the next lines form a block (Python, C-family, Ruby/Lua...)."""
_TRAILING_CLOSERS = set(")]}\"'`;,: \t")
"""Characters an editor auto-inserts after the cursor; a rest-of-line of only these counts as
end of line."""


def split_cursor_line(prefix: str, suffix: str) -> tuple[str, str]:
    """``(line_prefix, line_suffix)``: the cursor line's text before / after the cursor."""
    return prefix.rsplit("\n", 1)[-1], suffix.split("\n", 1)[0]


def indent_width(line: str) -> int:
    """Width of the leading whitespace (tabs count 4)."""
    stripped = line.lstrip(" \t")
    return len(line[: len(line) - len(stripped)].expandtabs(4))


def _at_end_of_line(line_suffix: str) -> bool:
    return all(ch in _TRAILING_CLOSERS for ch in line_suffix)


def wants_multiline(prefix: str, suffix: str) -> bool:
    """Multi-line when the cursor ends a block opener or sits on an empty line; else one line."""
    line_prefix, line_suffix = split_cursor_line(prefix, suffix)
    if not _at_end_of_line(line_suffix):
        return False  # mid-line: complete the line only
    if not line_prefix.strip():
        return True  # empty (or whitespace-only) line: a statement or block
    head = line_prefix.rstrip()
    if head.endswith(_BLOCK_OPENERS):
        return True
    # "foo(" / "x = [" at the very end of the line (nothing auto-closed): arguments/items block.
    return head.endswith(("(", "[")) and not line_suffix.strip()


def _previous_line(prefix: str) -> str:
    """The last non-blank line before the cursor line ("" if none)."""
    before = prefix.rsplit("\n", 1)[0] if "\n" in prefix else ""
    return next((ln for ln in reversed(before.split("\n")) if ln.strip()), "")


def _ends_block_opener(line: str) -> bool:
    return line.rstrip().endswith((*_BLOCK_OPENERS, "(", "["))


def _block_indent(prefix: str, suffix: str) -> tuple[int, int | None]:
    """``(minimum indent of block lines, indent of the opener line or None)``.

    The opener is the cursor line (``def f():|``) or, when the cursor sits on a blank line, the
    line above it (``def f():`` then a new line).
    """
    line_prefix, _ = split_cursor_line(prefix, suffix)
    if line_prefix.strip():
        if _ends_block_opener(line_prefix):
            opener = indent_width(line_prefix)
            return opener + 1, opener
        return indent_width(line_prefix), None
    above = _previous_line(prefix)
    if above and _ends_block_opener(above):
        opener = indent_width(above)
        return max(opener + 1, indent_width(line_prefix)), opener
    return indent_width(line_prefix), None


REPEAT_MIN_CHARS = 40
"""A loop is only cut once the repeated region is this long (short runs are often legitimate)."""
REPEAT_MIN_COPIES = 3
REPEAT_MIN_UNIT = 5
"""Runs of a shorter unit (``----``, ``0, 0, ``, ``))))``) are left alone: they are as often
tables and separators as loops, and ``maxNewTokens`` bounds them anyway."""
REPEAT_MAX_UNIT = 160
"""Longest repeated unit looked for (a couple of lines)."""
_DANGLING = " \t+-*/%|&^,=<>."


def cut_repetition(text: str) -> tuple[str, bool]:
    """Cut ``text`` when its end repeats one unit ≥ 3 times over ≥ 40 chars; ``(text, cut)``.

    Small models fall into loops (``money(1) + money(1) + …``, the same line over and over);
    decoding them wastes time and shows junk. The shortest repeating unit decides: it must be
    at least 5 characters long and contain a letter. The text is cut after the first copy of
    the unit, minus a dangling operator or comma.
    """
    size = len(text)
    if size < REPEAT_MIN_CHARS:
        return text, False
    for unit in range(1, min(REPEAT_MAX_UNIT, size // REPEAT_MIN_COPIES) + 1):
        run = 0  # chars at the end that equal the char one unit earlier
        while run < size - unit and text[size - 1 - run] == text[size - 1 - run - unit]:
            run += 1
        region = run + unit
        if region < max(REPEAT_MIN_CHARS, REPEAT_MIN_COPIES * unit):
            continue
        start = size - region
        first = text[start : start + unit]
        if unit < REPEAT_MIN_UNIT or not any(ch.isalpha() for ch in first):
            return text, False
        return text[: start + unit].rstrip(_DANGLING), True
    return text, False


def truncate_completion(
    text: str, prefix: str, *, multiline: bool, suffix: str = ""
) -> tuple[str, bool]:
    """Cut generated ``text`` at the first stop point; returns ``(text, stopped)``.

    ``stopped`` is True once a stop point is certain (generation can end). Single-line: the
    first newline. Multi-line: a line indented below the block (a closing bracket at the
    opener's indent is kept and ends the block), or a blank line followed by a dedent. The last,
    unfinished line only counts once its indentation is known (it has a non-blank character).
    When the cursor line is blank, the completion's first line is checked like the others.
    A completion caught in a loop stops too (:func:`cut_repetition`).
    """
    text, looped = cut_repetition(text)
    if looped:
        stopped_text, _ = truncate_completion(text, prefix, multiline=multiline, suffix=suffix)
        return stopped_text, True
    if not multiline:
        if "\n" in text:
            return text.split("\n", 1)[0], True
        return text, False

    line_prefix, _ = split_cursor_line(prefix, suffix)
    block_indent, opener_indent = _block_indent(prefix, suffix)
    lines = text.split("\n")
    kept: list[str] = []
    continues_line = bool(line_prefix.strip())
    last_indent = indent_width(line_prefix) if continues_line else None
    pending_blank = False
    for number, line in enumerate(lines):
        complete = number < len(lines) - 1
        full = line_prefix + line if number == 0 else line
        if number == 0 and continues_line:
            kept.append(line)
            continue
        if not full.strip():
            pending_blank = pending_blank or (complete and last_indent is not None)
            kept.append(line)
            continue
        width = indent_width(full)
        is_closer = full.lstrip()[0] in CLOSERS
        if opener_indent is not None and is_closer and width == opener_indent:
            kept.append(line)  # "}" closing the block we opened: keep it, then stop
            if complete or line.strip() in CLOSERS:
                return _join(kept), True
            continue
        if width < block_indent or (
            pending_blank and last_indent is not None and width < last_indent
        ):
            return _rstrip_blank(kept), True
        pending_blank = False
        last_indent = width
        kept.append(line)
    return text, False


def _join(lines: list[str]) -> str:
    return "\n".join(lines)


def _rstrip_blank(lines: list[str]) -> str:
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


def bracket_imbalance(text: str) -> int:
    """Unmatched brackets in ``text`` (closers without openers + openers left open)."""
    stack: list[str] = []
    unmatched = 0
    for ch in text:
        if ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS:
            if stack and stack[-1] == CLOSERS[ch]:
                stack.pop()
            else:
                unmatched += 1
    return unmatched + len(stack)


def _next_suffix_line(suffix: str) -> str:
    """The first non-blank line after the cursor line, stripped ("" if none)."""
    rest = suffix.split("\n", 1)[1] if "\n" in suffix else ""
    return next((ln.strip() for ln in rest.split("\n") if ln.strip()), "")


def _drop_suffix_lines(text: str, line_prefix: str, suffix: str) -> str:
    """Cut ``text`` at the first line that repeats the suffix's next non-blank line."""
    candidate = _next_suffix_line(suffix)
    if len(candidate) < 2:  # a lone "}" / ")" is too common to mean "repeated the suffix"
        return text
    lines = text.split("\n")
    for number, line in enumerate(lines):
        if number == 0 and line_prefix.strip():
            continue  # the first line continues a non-empty cursor line
        if line.strip() == candidate:
            return _rstrip_blank(lines[:number]) if number else ""
    return text


def _drop_duplicate_closers(text: str, line_prefix: str, line_suffix: str) -> str:
    """Remove trailing text that the rest of the line already provides.

    The longest start of ``line_suffix`` that ``text`` ends with is dropped when that makes
    the line's brackets balance better (``foo(bar(`` + ``x))`` + ``)`` → ``x)``), or, for
    pieces that are not only brackets (``):``, quotes), when it does not make them worse.
    """
    target = line_suffix.strip()
    if not target:
        return text
    if "\n" in text:
        head, last = text.rsplit("\n", 1)
        head += "\n"
        context = ""  # multi-line: only the last line meets the suffix
    else:
        head, last, context = "", text, line_prefix
    body = last.rstrip()
    for size in range(min(len(target), len(body)), 0, -1):
        piece = target[:size]
        if not body.endswith(piece):
            continue
        trimmed = body[: len(body) - size]
        before = bracket_imbalance(context + body + line_suffix)
        after = bracket_imbalance(context + trimmed + line_suffix)
        only_brackets = all(ch in CLOSERS or ch in OPENERS for ch in piece)
        if after < before or (not only_brackets and after <= before):
            return head + trimmed
    return text


OPEN_BRACKET_LINES = 40
"""Lines before the cursor whose unclosed brackets count (:func:`_open_brackets`)."""


def _open_brackets(text: str) -> list[str]:
    """The stack of brackets ``text`` leaves open, outside ``'`` / ``"`` strings and ``#``
    comments on each line (an approximation: multi-line strings are not tracked)."""
    stack: list[str] = []
    for line in text.split("\n"):
        quote = ""
        for ch in line:
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "'\"":
                quote = ch
            elif ch == "#":
                break
            elif ch in OPENERS:
                stack.append(ch)
            elif ch in CLOSERS:
                if stack and stack[-1] == CLOSERS[ch]:
                    stack.pop()
                else:
                    stack.clear()  # closes something opened before the window: start over
    return stack


def _drop_closers_of_next_line(text: str, prefix: str, suffix: str) -> str:
    """A one-line completion at the end of a line must not close a bracket that the suffix's
    next line closes (``os.path.join(`` / ``    a, b|`` / ``)``: the completion ``, c)`` →
    ``, c``): its trailing closers that leave fewer brackets open than that line's leading
    closers need are dropped."""
    line_suffix = suffix.split("\n", 1)[0]
    if "\n" in text or line_suffix.strip() or not text.rstrip().endswith(tuple(CLOSERS)):
        return text
    following = _next_suffix_line(suffix)
    needed = len(following) - len(following.lstrip("".join(CLOSERS)))
    if not needed:
        return text
    recent = "\n".join(prefix.rsplit("\n", OPEN_BRACKET_LINES)[-OPEN_BRACKET_LINES:])
    before, after = _open_brackets(recent), _open_brackets(recent + text)
    if len(after) >= needed or len(before) < needed:
        return text  # enough left open, or the window cannot tell
    body = text.rstrip()
    for _ in range(needed - len(after)):
        if not body.endswith(tuple(CLOSERS)):
            break
        body = body[:-1].rstrip()
    return body


def postprocess(text: str, prefix: str, suffix: str) -> str:
    """Drop text repeating the suffix / next line, and brackets the suffix already closes
    (on the cursor line or, for a line ending at the cursor, on the next line)."""
    if not text:
        return text
    line_prefix, line_suffix = split_cursor_line(prefix, suffix)
    text = _drop_suffix_lines(text, line_prefix, suffix)
    if "\n" in text:
        text = text.rstrip()
    text = _drop_duplicate_closers(text, line_prefix, line_suffix)
    text = _drop_closers_of_next_line(text, prefix, suffix)
    return text if text.strip() else ""
