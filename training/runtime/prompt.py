"""Token-budgeted completion prompts: prefix-heavy, cut at line boundaries, path header.

The budget is counted with the real tokenizer. Lines are taken outwards from the cursor (the
prefix's last lines, the suffix's first lines) until the budget is spent; the cursor line itself
is always kept (its far end is cut by characters only if that single line exceeds the budget).
The prefix gets 3/4 of the budget, and whatever one side does not use flows to the other.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from training.runtime.fim import FimTemplate, encode

DEFAULT_CONTEXT_TOKENS = 1536
PREFIX_SHARE = 0.75
"""Share of the budget reserved for the prefix (3:1); unused budget flows to the other side."""
_SPECIAL_OVERHEAD = 4
"""BOS + the three FIM tokens."""

_LINE_COMMENT: dict[str, str] = {
    **dict.fromkeys(
        [
            "python",
            "shell",
            "bash",
            "sh",
            "zsh",
            "ruby",
            "perl",
            "r",
            "yaml",
            "toml",
            "make",
            "makefile",
            "dockerfile",
            "cmake",
            "elixir",
            "julia",
            "nim",
            "powershell",
            "coffeescript",
        ],
        "#",
    ),
    **dict.fromkeys(
        [
            "c",
            "cpp",
            "c++",
            "csharp",
            "java",
            "javascript",
            "javascriptreact",
            "typescript",
            "typescriptreact",
            "go",
            "rust",
            "kotlin",
            "swift",
            "scala",
            "dart",
            "php",
            "groovy",
            "objective-c",
            "objective-cpp",
            "zig",
            "proto",
            "jsonc",
            "solidity",
            "verilog",
        ],
        "//",
    ),
    **dict.fromkeys(["lua", "sql", "haskell", "ada", "elm", "purescript"], "--"),
    **dict.fromkeys(["lisp", "clojure", "scheme", "racket", "ini", "asm"], ";"),
    **dict.fromkeys(["tex", "latex", "erlang", "matlab", "prolog"], "%"),
    "vim": '"',
    "fortran": "!",
}
_BLOCK_COMMENT: dict[str, tuple[str, str]] = {
    **dict.fromkeys(["html", "xml", "markdown", "vue", "svelte"], ("<!--", "-->")),
    **dict.fromkeys(["css", "scss", "less"], ("/*", "*/")),
    "ocaml": ("(*", "*)"),
}
_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".sh": "shell",
    ".bash": "shell",
    ".rb": "ruby",
    ".pl": "perl",
    ".r": "r",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".cs": "csharp",
    ".java": "java",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascriptreact",
    ".ts": "typescript",
    ".tsx": "typescriptreact",
    ".go": "go",
    ".rs": "rust",
    ".kt": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
    ".dart": "dart",
    ".php": "php",
    ".lua": "lua",
    ".sql": "sql",
    ".hs": "haskell",
    ".clj": "clojure",
    ".el": "lisp",
    ".tex": "tex",
    ".erl": "erlang",
    ".m": "matlab",
    ".vim": "vim",
    ".f90": "fortran",
    ".html": "html",
    ".htm": "html",
    ".xml": "xml",
    ".md": "markdown",
    ".vue": "vue",
    ".svelte": "svelte",
    ".css": "css",
    ".scss": "scss",
    ".less": "less",
    ".ml": "ocaml",
    ".zig": "zig",
    ".ex": "elixir",
    ".exs": "elixir",
    ".jl": "julia",
    ".ps1": "powershell",
}
_FILENAMES = {"makefile": "make", "dockerfile": "dockerfile", "cmakelists.txt": "cmake"}


@dataclass
class Prompt:
    """A prompt ready for the model."""

    input_ids: list[int]
    prefix: str
    """The (possibly truncated) prefix text, including the path header."""
    suffix: str
    """The (possibly truncated) suffix text."""
    header: str
    """The path header comment (e.g. ``# path: src/app.py\\n``)."""
    prefix_truncated: bool = False
    suffix_truncated: bool = False


def guess_language(path: str) -> str | None:
    """LSP language id from a file name (``None`` when unknown)."""
    name = posixpath.basename(path.replace("\\", "/")).lower()
    if name in _FILENAMES:
        return _FILENAMES[name]
    return _EXTENSIONS.get(posixpath.splitext(name)[1])


def comment_header(path: str, language: str | None = None) -> str:
    """A one-line comment naming the file, in the language's comment syntax ("" if no path)."""
    if not path:
        return ""
    language = (language or guess_language(path) or "").lower()
    shown = path.replace("\\", "/")
    if language in _BLOCK_COMMENT:
        start, end = _BLOCK_COMMENT[language]
        return f"{start} path: {shown} {end}\n"
    if language in _LINE_COMMENT:
        return f"{_LINE_COMMENT[language]} path: {shown}\n"
    if language in ("json", "plaintext", "text"):
        return ""  # no comment syntax: a header would be invalid content
    return f"# path: {shown}\n"


def count_tokens(tokenizer: Any, text: str) -> int:
    """Tokens ``text`` takes (no special tokens)."""
    return len(encode(tokenizer, text))


def _take_lines(tokenizer: Any, lines: list[str], budget: int) -> tuple[list[str], int]:
    """Take lines in order while their token counts fit ``budget``; returns (lines, used)."""
    taken: list[str] = []
    used = 0
    for line in lines:
        cost = count_tokens(tokenizer, line)
        if used + cost > budget:
            break
        taken.append(line)
        used += cost
    return taken, used


def _cut_chars(tokenizer: Any, text: str, budget: int, *, keep_end: bool) -> str:
    """Longest end (or start) of ``text`` within ``budget`` tokens, by bisection on chars."""
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        piece = text[len(text) - mid :] if keep_end else text[:mid]
        if count_tokens(tokenizer, piece) <= budget:
            low = mid
        else:
            high = mid - 1
    return text[len(text) - low :] if keep_end else text[:low]


def _fit_prefix(tokenizer: Any, prefix: str, budget: int) -> tuple[str, int]:
    if budget <= 0 or not prefix:
        return "", 0
    parts = prefix.split("\n")
    cursor_line = parts[-1]
    cursor_cost = count_tokens(tokenizer, cursor_line)
    if cursor_cost >= budget:
        piece = _cut_chars(tokenizer, cursor_line, budget, keep_end=True)
        return piece, count_tokens(tokenizer, piece)
    earlier = [line + "\n" for line in reversed(parts[:-1])]
    taken, used = _take_lines(tokenizer, earlier, budget - cursor_cost)
    return "".join(reversed(taken)) + cursor_line, used + cursor_cost


def _fit_suffix(tokenizer: Any, suffix: str, budget: int) -> tuple[str, int]:
    if budget <= 0 or not suffix:
        return "", 0
    parts = suffix.split("\n")
    lines = [line + "\n" for line in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    first_cost = count_tokens(tokenizer, lines[0])
    if first_cost >= budget:
        piece = _cut_chars(tokenizer, lines[0], budget, keep_end=False)
        return piece, count_tokens(tokenizer, piece)
    taken, used = _take_lines(tokenizer, lines, budget)
    return "".join(taken), used


def _window(text: str, chars: int, *, keep_end: bool) -> str:
    """At most ``chars`` characters next to the cursor, cut at a line boundary when cut at all."""
    if len(text) <= chars:
        return text
    if keep_end:
        piece = text[len(text) - chars :]
        newline = piece.find("\n")
        return piece[newline + 1 :] if newline >= 0 else piece
    piece = text[:chars]
    newline = piece.rfind("\n")
    return piece[: newline + 1] if newline >= 0 else piece


def build_prompt(
    tokenizer: Any,
    template: FimTemplate,
    *,
    path: str,
    prefix: str,
    suffix: str,
    context_tokens: int = DEFAULT_CONTEXT_TOKENS,
    language: str | None = None,
    spm: bool = False,
) -> Prompt:
    """Build a prompt of at most ``context_tokens`` tokens (counted with ``tokenizer``).

    Per-line counts are summed, which can differ from the joined text's count by a token at a
    line boundary (SentencePiece), so the prompt is re-cut if it ends up over budget.
    """
    if context_tokens < 16:
        raise ValueError(f"context_tokens must be at least 16, got {context_tokens}")
    header = comment_header(path, language)
    header_cost = count_tokens(tokenizer, header) if header else 0
    budget = max(context_tokens - _SPECIAL_OVERHEAD - header_cost, 8)
    use_suffix = template.supports_fim
    # Never tokenize more of a huge document than could possibly fit (~16 chars per token).
    near_prefix = _window(prefix, 16 * budget, keep_end=True)
    near_suffix = _window(suffix, 16 * budget, keep_end=False) if use_suffix else ""
    # How much the prefix could use, to hand the rest to the suffix. Code averages 3-4
    # characters per token, so a prefix over 6 chars/token of its share surely fills it
    # (counting a 20 kB prefix would cost ~50 ms).
    prefix_full_share = int(budget * PREFIX_SHARE)
    if len(near_prefix) > 6 * prefix_full_share:
        prefix_need = budget
    else:
        prefix_need = count_tokens(tokenizer, near_prefix)
    ids: list[int] = []
    fit_prefix = fit_suffix = ""
    for _ in range(8):
        prefix_share = budget if not use_suffix else int(budget * PREFIX_SHARE)
        fit_suffix, suffix_used = _fit_suffix(
            tokenizer, near_suffix, budget - min(prefix_share, prefix_need)
        )
        fit_prefix, _ = _fit_prefix(tokenizer, near_prefix, budget - suffix_used)
        ids = template.encode_infill(tokenizer, header + fit_prefix, fit_suffix, spm=spm)
        if len(ids) <= context_tokens:
            break
        budget -= len(ids) - context_tokens
    return Prompt(
        input_ids=ids,
        prefix=header + fit_prefix,
        suffix=fit_suffix,
        header=header,
        prefix_truncated=len(fit_prefix) < len(prefix),
        suffix_truncated=use_suffix and len(fit_suffix) < len(suffix),
    )
