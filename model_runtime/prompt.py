"""Token-budgeted completion prompts: prefix-heavy, cut at line boundaries, path header.

The budget is counted with the real tokenizer. Lines are taken outwards from the cursor (the
prefix's last lines, the suffix's first lines) until the budget is spent; the cursor line itself
is always kept (its far end is cut by characters only if that single line exceeds the budget).
The prefix gets 3/4 of the budget, and whatever one side does not use flows to the other.

Repository context (snippets of other files, :mod:`model_runtime.retrieval`) takes at most
``repo_context_tokens`` (and never more than half the budget) out of the same budget and always
comes first, so it stays a stable KV-cache prefix while the user types:

- Qwen2.5-Coder (its repository format, with the real special tokens)::

      <|repo_name|>name\n <|file_sep|>path\ncontent ... <|file_sep|>current/path\n <|fim_prefix|>...

  (the current file's path is then on its ``<|file_sep|>`` line, not in a comment header);
- other families: each snippet behind its path comment header (``# path: util.py``), at the
  start of the prefix segment (PSM: ``[BOS, PRE] + context + header + prefix + [SUF] ...``) or,
  for SPM and left-to-right prompts, right after BOS (``[BOS] + context + [PRE, SUF] ...``).

:func:`assemble_ids` is the one place that orders the parts; training examples use it too.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from model_runtime.fim import FimTemplate, _token_id, encode, encode_infill_text

DEFAULT_CONTEXT_TOKENS = 1536
PREFIX_SHARE = 0.75
"""Share of the budget reserved for the prefix (3:1); unused budget flows to the other side."""
_SPECIAL_OVERHEAD = 4
"""BOS + the three FIM tokens."""
DEFAULT_REPO_CONTEXT_TOKENS = 384
"""Default token budget of the repository context block (a quarter of the default 1536)."""
MIN_SNIPPET_TOKENS = 24
"""A snippet cut to fit the context budget keeps at least this many tokens, or is left out."""
QWEN_REPO_TOKENS = ("<|repo_name|>", "<|file_sep|>")

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
    context: RepoContext | None = None
    """The repository context block at the start of the prompt (``None``: no snippets)."""


class SnippetLike(Protocol):
    """What the prompt needs of a snippet (:class:`model_runtime.retrieval.Snippet`)."""

    @property
    def path(self) -> str: ...

    @property
    def text(self) -> str: ...


@dataclass
class RepoContext:
    """Encoded repository context: ids placed first in the prompt, and where they came from."""

    ids: list[int]
    qwen: bool
    """Qwen repository format (the current file's path is in the block, no comment header)."""
    sources: list[str] = field(default_factory=list)
    """Paths of the snippets actually included, in prompt order."""


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


def _qwen_repo_ids(tokenizer: Any, template: FimTemplate) -> tuple[int, int] | None:
    if template.name != "qwen":
        return None
    ids = [_token_id(tokenizer, token) for token in QWEN_REPO_TOKENS]
    if ids[0] is None or ids[1] is None:
        return None
    return ids[0], ids[1]


def _fit_snippet(tokenizer: Any, head: str, text: str, budget: int, *, first: bool) -> list[int]:
    """Ids of ``head + text`` within ``budget`` (last lines dropped if needed; [] if too small)."""
    enc = encode if first else encode_infill_text
    ids = enc(tokenizer, head + text)
    if len(ids) <= budget:
        return ids
    if budget < MIN_SNIPPET_TOKENS:
        return []
    lines = text.splitlines(keepends=True)
    low, high = 0, len(lines)
    while low < high:  # the most lines that fit
        mid = (low + high + 1) // 2
        if len(enc(tokenizer, head + "".join(lines[:mid]))) <= budget:
            low = mid
        else:
            high = mid - 1
    return enc(tokenizer, head + "".join(lines[:low])) if low else []


def encode_repo_context(
    tokenizer: Any,
    template: FimTemplate,
    snippets: Sequence[SnippetLike],
    *,
    path: str,
    budget: int,
    repo_name: str = "",
) -> RepoContext | None:
    """The context block for ``snippets`` (most relevant first) in at most ``budget`` tokens.

    The most relevant snippet is placed last, next to the current file; snippets that do not
    fit are left out, the last one that partly fits is cut at a line. ``None`` when nothing fits.
    """
    if not snippets or budget <= 0:
        return None
    qwen = _qwen_repo_ids(tokenizer, template)
    pieces: list[tuple[str, list[int]]] = []
    if qwen is not None:
        repo_id, sep_id = qwen
        lead = [repo_id, *encode(tokenizer, (repo_name or "workspace") + "\n")]
        tail = [sep_id, *encode(tokenizer, path.replace("\\", "/") + "\n")]
        left = budget - len(lead) - len(tail)
        for snippet in snippets:
            if left <= 1:
                break
            fit = _fit_snippet(tokenizer, snippet.path + "\n", snippet.text, left - 1, first=True)
            if fit:
                pieces.append((snippet.path, [sep_id, *fit]))
                left -= len(fit) + 1
        if not pieces:
            return None
        body = [tid for _, piece in reversed(pieces) for tid in piece]
        sources = [p for p, _ in reversed(pieces)]
        return RepoContext(ids=lead + body + tail, qwen=True, sources=sources)
    # Allowances in relevance order; encoding in prompt order (the most relevant last, the
    # first piece with the implicit leading space the prefix segment would have).
    left = budget
    chosen: list[tuple[str, str, int]] = []
    for snippet in snippets:
        text = snippet.text if snippet.text.endswith("\n") else snippet.text + "\n"
        cost = len(encode_infill_text(tokenizer, comment_header(snippet.path) + text)) + 1
        allowance = min(cost, left)
        if allowance >= min(cost, MIN_SNIPPET_TOKENS):
            chosen.append((snippet.path, text, allowance))
            left -= allowance
    ids: list[int] = []
    for i, (snippet_path, text, allowance) in enumerate(reversed(chosen)):
        piece = _fit_snippet(tokenizer, comment_header(snippet_path), text, allowance, first=i == 0)
        if piece:
            pieces.append((snippet_path, piece))
            ids.extend(piece)
    if not pieces:
        return None
    return RepoContext(ids=ids, qwen=False, sources=[p for p, _ in pieces])


def assemble_ids(
    tokenizer: Any,
    template: FimTemplate,
    prefix: str,
    suffix: str,
    *,
    spm: bool = False,
    context: RepoContext | None = None,
) -> list[int]:
    """Prompt ids: the FIM construction of ``template`` with the context block first."""
    if context is None or not context.ids:
        return template.encode_infill(tokenizer, prefix, suffix, spm=spm)
    head = [template.bos_id] if template.bos_id is not None else []
    if context.qwen or spm or not template.supports_fim:
        if not template.supports_fim:
            return [*head, *context.ids, *encode_infill_text(tokenizer, prefix)]
        body = template.encode_infill(tokenizer, prefix, suffix, spm=spm)[len(head) :]
        return [*head, *context.ids, *body]
    assert template.prefix_id is not None and template.suffix_id is not None
    assert template.middle_id is not None
    return [
        *head,
        template.prefix_id,
        *context.ids,
        *encode_infill_text(tokenizer, prefix),
        template.suffix_id,
        *encode_infill_text(tokenizer, suffix),
        template.middle_id,
    ]


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
    snippets: Sequence[SnippetLike] = (),
    repo_name: str = "",
    repo_context_tokens: int = DEFAULT_REPO_CONTEXT_TOKENS,
) -> Prompt:
    """Build a prompt of at most ``context_tokens`` tokens (counted with ``tokenizer``).

    Per-line counts are summed, which can differ from the joined text's count by a token at a
    line boundary (SentencePiece), so the prompt is re-cut if it ends up over budget.
    ``snippets`` (most relevant first) fill at most ``min(repo_context_tokens,
    context_tokens // 2)`` tokens; the current file gets the rest.
    """
    if context_tokens < 16:
        raise ValueError(f"context_tokens must be at least 16, got {context_tokens}")
    context = encode_repo_context(
        tokenizer,
        template,
        snippets,
        path=path,
        budget=min(repo_context_tokens, context_tokens // 2),
        repo_name=repo_name,
    )
    context_cost = len(context.ids) if context is not None else 0
    header = "" if context is not None and context.qwen else comment_header(path, language)
    header_cost = count_tokens(tokenizer, header) if header else 0
    budget = max(context_tokens - _SPECIAL_OVERHEAD - header_cost - context_cost, 8)
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
        # Counted as _fit_prefix counts (per line), so a prefix that fits is never cut.
        prefix_need = _fit_prefix(tokenizer, near_prefix, budget)[1]
    ids: list[int] = []
    fit_prefix = fit_suffix = ""
    for _ in range(8):
        prefix_share = budget if not use_suffix else int(budget * PREFIX_SHARE)
        fit_suffix, suffix_used = _fit_suffix(
            tokenizer, near_suffix, budget - min(prefix_share, prefix_need)
        )
        fit_prefix, _ = _fit_prefix(tokenizer, near_prefix, budget - suffix_used)
        ids = assemble_ids(
            tokenizer, template, header + fit_prefix, fit_suffix, spm=spm, context=context
        )
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
        context=context,
    )
