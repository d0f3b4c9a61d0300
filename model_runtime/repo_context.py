"""The repository-context block of a prompt: snippets of other files, encoded within a budget.

Always the first tokens of the prompt, so it stays a stable KV-cache prefix while the user types
(:func:`model_runtime.prompt.assemble_ids` puts it there):

- Qwen2.5-Coder (its repository format, with the real special tokens)::

      <|repo_name|>name\n <|file_sep|>path\ncontent ... <|file_sep|>current/path\n

  (the current file's path is then on its ``<|file_sep|>`` line, not in a comment header);
- other families: each snippet behind its path comment header (``# path: util.py``).

The most relevant snippet is placed last, next to the current file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from model_runtime.encoding import encode, encode_infill_text, token_id
from model_runtime.fim import FimTemplate
from model_runtime.languages import comment_header

MIN_SNIPPET_TOKENS = 24
"""A snippet cut to fit the context budget keeps at least this many tokens, or is left out."""
QWEN_REPO_TOKENS = ("<|repo_name|>", "<|file_sep|>")


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


def _qwen_repo_ids(tokenizer: Any, template: FimTemplate) -> tuple[int, int] | None:
    if template.name != "qwen":
        return None
    ids = [token_id(tokenizer, token) for token in QWEN_REPO_TOKENS]
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
