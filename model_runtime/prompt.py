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

:func:`assemble_ids` is the one place that orders the parts; training examples use it too. The
context block is encoded by :mod:`model_runtime.repo_context`, the path header comes from
:mod:`model_runtime.languages`; this module re-exports both modules' public names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from model_runtime.encoding import encode, encode_infill_text
from model_runtime.fim import FimTemplate
from model_runtime.languages import comment_header, guess_language
from model_runtime.repo_context import (
    MIN_SNIPPET_TOKENS,
    QWEN_REPO_TOKENS,
    RepoContext,
    SnippetLike,
    encode_repo_context,
)

__all__ = [
    "DEFAULT_CONTEXT_TOKENS",
    "DEFAULT_REPO_CONTEXT_TOKENS",
    "MIN_SNIPPET_TOKENS",
    "QWEN_REPO_TOKENS",
    "Prompt",
    "RepoContext",
    "SnippetLike",
    "assemble_ids",
    "build_prompt",
    "comment_header",
    "count_tokens",
    "encode_repo_context",
    "guess_language",
]

DEFAULT_CONTEXT_TOKENS = 1536
PREFIX_SHARE = 0.75
"""Share of the budget reserved for the prefix (3:1); unused budget flows to the other side."""
_SPECIAL_OVERHEAD = 4
"""BOS + the three FIM tokens."""
DEFAULT_REPO_CONTEXT_TOKENS = 384
"""Default token budget of the repository context block (a quarter of the default 1536)."""


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
