"""The prompt a request gets: token-budgeted, its window anchored at a stable file line.

:func:`budgeted_prompt` is :func:`model_runtime.prompt.build_prompt` with a request's fields.
When the prefix does not fit the token budget, the tightest cut (lines taken outwards from the
cursor) moves with every line the cursor moves, which would change the first prompt tokens and
defeat the engine's KV prefix reuse. So the window starts at the first line after that cut whose
file line number is a multiple of the anchor step (:func:`anchor_lines`, plus a little slack);
the previous anchor (the *sticky* state the engine keeps between requests) is kept while it
still fits and is at most one step later than a fresh one. Moving or typing inside a file then
keeps the prompt's start until the cursor has moved about one anchor step further.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from model_runtime.prompt import Prompt, build_prompt

if TYPE_CHECKING:
    from model_runtime.completion_types import CompletionRequest

__all__ = [
    "ANCHOR_SLACK_LINES", "ANCHOR_TOKENS_PER_LINE", "Sticky", "anchor_lines", "anchor_window",
    "budgeted_prompt", "describe_prompt",
]  # fmt: skip

STICKY_HEAD = 256
"""Characters of the prompt window's first line(s) used to recognise its start again."""
ANCHOR_TOKENS_PER_LINE = 48
"""Anchor step = budget ÷ this, in lines (1536 tokens → 32 lines, about a fifth of the window
at ~10 tokens per line of code): a cut prompt window starts at a file line that is a multiple
of the step (llama.vim aligns its 64-line chunks the same way), so moving or typing inside a
file keeps the prompt's first tokens until the cursor has moved about one step. A longer step
keeps the start over longer moves but leaves more of the prefix budget to the suffix."""
ANCHOR_SLACK_LINES = 2
"""A fresh window starts at least this many lines after the tightest cut: room to type."""

Sticky = tuple[str, int, str]
"""The last anchor: (path, file line of the window start, the window's first characters)."""


def anchor_lines(context_tokens: int) -> int:
    """Lines between prompt-window anchors for a budget (4 to 64)."""
    return max(4, min(64, context_tokens // ANCHOR_TOKENS_PER_LINE))


def budgeted_prompt(
    loaded: Any, request: CompletionRequest, prefix: str, *, budget: int, spm: bool
) -> Prompt:
    """The prompt for ``request`` with document prefix ``prefix`` within ``budget`` tokens
    (``loaded``: a :class:`~model_runtime.loaded.LoadedModel`, its tokenizer and template)."""
    repo_tokens = request.repo_context_tokens
    return build_prompt(
        loaded.tokenizer,
        loaded.template,
        path=request.path,
        prefix=prefix,
        suffix=request.suffix,
        context_tokens=budget,
        language=request.language,
        spm=spm,
        snippets=request.snippets,
        repo_name=request.repo_name,
        **({"repo_context_tokens": repo_tokens} if repo_tokens is not None else {}),
    )


def describe_prompt(prompt: Prompt, tokenizer: Any) -> str:
    """For the debug log: the prompt's length, its context sources and its decoded text."""
    sources = prompt.context.sources if prompt.context is not None else []
    text = tokenizer.decode(prompt.input_ids, skip_special_tokens=False)
    return f"{len(prompt.input_ids)} tokens, context from {sources or 'no other file'}:\n{text}"


def anchor_window(
    request: CompletionRequest,
    prompt: Prompt,
    build: Callable[[str], Prompt],
    sticky: Sticky | None,
    budget: int,
) -> tuple[Prompt | None, Sticky | None]:
    """``prompt`` re-cut to start at an anchor line, and the sticky state to keep.

    ``build(prefix)`` builds the prompt for a shorter document prefix; ``budget`` is the token
    budget of the request. The prompt is ``None`` when ``prompt`` is to be kept as it is.
    """
    prefix = request.prefix
    body = prompt.prefix[len(prompt.header) :]
    cut = len(prefix) - len(body)
    if not prompt.prefix_truncated and request.prefix_line == 0:
        return None, None  # the whole file fits: the file start is the anchor
    if not body or (cut > 0 and prefix[cut - 1] != "\n"):
        return None, sticky  # the cursor line alone was cut by characters
    first = request.prefix_line + prefix.count("\n", 0, cut)  # file line of the tight cut
    step = anchor_lines(budget)
    fresh = first + ANCHOR_SLACK_LINES
    fresh += -fresh % step
    targets = [fresh]
    near = sticky is not None and fresh < sticky[1] <= fresh + step
    if sticky is not None and sticky[0] == request.path and near:
        targets.insert(0, sticky[1])  # hysteresis: moving back up a little keeps it
    cursor_line = prefix.rfind("\n") + 1
    for target in targets:
        offset = _line_start(prefix, cut, target - first)
        if offset is None or offset > cursor_line:
            continue
        if sticky is not None and target == sticky[1]:
            head = sticky[2][: len(prefix) - offset]
            if not prefix.startswith(head, offset):
                continue
        anchored = build(prefix[offset:])
        if anchored.prefix_truncated:
            continue
        head_end = min(offset + STICKY_HEAD, cursor_line)  # whole lines, not the cursor's
        # The document's prefix *was* cut (callers such as the prefetcher ask this).
        cut_prompt = dataclasses.replace(anchored, prefix_truncated=True)
        return cut_prompt, (request.path, target, prefix[offset:head_end])
    return None, None


def _line_start(text: str, offset: int, lines: int) -> int | None:
    """Offset of the line ``lines`` lines after the line starting at ``offset`` (None: none)."""
    for _ in range(lines):
        newline = text.find("\n", offset)
        if newline < 0:
            return None
        offset = newline + 1
    return offset
