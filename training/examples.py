"""Dataset records → token sequences for LoRA training.

Each file record is cut into chunks that fit the context (cuts prefer line boundaries), each chunk
gets the file path header the runtime's prompt builder also uses, and FIM is applied per chunk
(character-level split points, rate 0.9, PSM/SPM 50/50) through the model family's
``FimTemplate.encode_training``.  The loss covers every token, including the end token.

Repository context, as the server sends it: a FIM example gets the snippets
:func:`model_runtime.retrieval.context_for` finds for its cursor (the file's text before the
split point), assembled by :func:`model_runtime.prompt.assemble_ids`, so the adapter learns
the prompts it is served. **Split rule**: the index holds only the records passed in (training
passes the training split), so a held-out file never appears as context of a training example;
the split keeps near-duplicate clusters on one side, so no copy of one does either. Evaluation
(held-out holes) retrieves from every other dataset file, as the server would; nothing it sees
is trained on.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from training.fim_split import FimParts, fim_split

# Split points can break a token into two; a cut costs at most a couple of extra tokens.
_SPLIT_SLACK_TOKENS = 8


class TrainingTemplate(Protocol):
    """The part of ``model_runtime.fim.FimTemplate`` that training needs."""

    name: str

    def encode_training(
        self, tokenizer: Any, prefix: str, middle: str, suffix: str, *, spm: bool
    ) -> list[int]: ...


@dataclass
class Example:
    """One training sequence; ``labels`` equal ``input_ids`` (loss on every part)."""

    input_ids: list[int]
    path: str
    fim: bool
    spm: bool

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class ExampleStats:
    """Counts describing what ``build_examples`` produced."""

    files: int = 0
    chunks: int = 0
    fim: int = 0
    spm: int = 0
    truncated: int = 0
    tokens: int = 0
    with_context: int = 0
    """FIM examples that got repository context from other training files."""
    skipped_paths: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (skipped paths are counted, not listed)."""
        return {
            "files": self.files,
            "chunks": self.chunks,
            "fim": self.fim,
            "spm": self.spm,
            "truncated": self.truncated,
            "tokens": self.tokens,
            "with_context": self.with_context,
            "skipped": len(self.skipped_paths),
        }


def path_header(path: str, language: str | None = None) -> str:
    """The file path header comment, exactly as the runtime's prompt builder writes it."""
    from model_runtime.prompt import comment_header

    return comment_header(path, language)


def _plain_ids(tokenizer: Any, template: Any, text: str) -> list[int]:
    """A left-to-right example: [BOS] text end-token, with the runtime's text encoding."""
    from model_runtime.fim import encode

    bos = getattr(template, "bos_id", None)
    end = getattr(template, "end_id", None)
    if end is None:
        end = getattr(tokenizer, "eos_token_id", None)
    return (
        ([bos] if bos is not None else [])
        + encode(tokenizer, text)
        + ([end] if end is not None else [])
    )


def chunk_text(content: str, tokenizer: Any, max_tokens: int) -> list[str]:
    """Cut ``content`` into pieces of at most ~``max_tokens`` tokens, preferring line starts."""
    if max_tokens < 16:
        raise ValueError(f"context too small for training chunks ({max_tokens} tokens left)")
    if not content:
        return []
    try:
        enc = tokenizer(content, add_special_tokens=False, return_offsets_mapping=True)
        offsets: Sequence[tuple[int, int]] = enc["offset_mapping"]
    except (NotImplementedError, TypeError, ValueError, KeyError):
        return _chunk_by_lines(content, tokenizer, max_tokens)
    n = len(offsets)
    if n <= max_tokens:
        return [content]
    chunks: list[str] = []
    start_tok, start_char = 0, 0
    while start_tok < n:
        end_tok = start_tok + max_tokens
        if end_tok >= n:
            chunks.append(content[start_char:])
            break
        cut_tok = end_tok
        # Prefer a token that starts a line, within the last half of the window.
        for i in range(end_tok, start_tok + max_tokens // 2, -1):
            s = offsets[i][0]
            if s > start_char and content[s - 1] == "\n":
                cut_tok = i
                break
        cut_char = offsets[cut_tok][0]
        if cut_char <= start_char:  # degenerate offsets: fall back to the raw window
            cut_char = offsets[end_tok][0] if offsets[end_tok][0] > start_char else len(content)
        chunks.append(content[start_char:cut_char])
        start_tok, start_char = cut_tok, cut_char
    return [c for c in chunks if c]


def _chunk_by_lines(content: str, tokenizer: Any, max_tokens: int) -> list[str]:
    """Fallback for tokenizers without offsets: greedy line packing by per-line token counts."""
    chunks: list[str] = []
    cur: list[str] = []
    cur_tokens = 0
    for line in content.splitlines(keepends=True):
        t = len(tokenizer(line, add_special_tokens=False)["input_ids"])
        if cur and cur_tokens + t > max_tokens:
            chunks.append("".join(cur))
            cur, cur_tokens = [], 0
        if t > max_tokens:  # one huge line: cut it by characters proportionally
            step = max(1, len(line) * max_tokens // t)
            chunks.extend(line[i : i + step] for i in range(0, len(line), step))
            continue
        cur.append(line)
        cur_tokens += t
    if cur:
        chunks.append("".join(cur))
    return chunks


def encode_parts(
    parts: FimParts, header: str, tokenizer: Any, template: TrainingTemplate
) -> list[int]:
    """Token ids for one chunk; the path header leads the prefix (as in inference prompts)."""
    if not parts.fim:
        return _plain_ids(tokenizer, template, header + parts.middle)
    return template.encode_training(
        tokenizer, header + parts.prefix, parts.middle, parts.suffix, spm=parts.spm
    )


REPO_CONTEXT_SHARE = 4
"""Repository context takes at most 1/4 of a training sequence (384 of 1536 when serving)."""


def _context_ids(
    tokenizer: Any,
    template: Any,
    index: Any,
    parts: FimParts,
    header: str,
    *,
    path: str,
    before: str,
    budget: int,
) -> list[int] | None:
    """A FIM example with repository context; ``None`` when no snippet applies."""
    from model_runtime.fim import encode_infill_text
    from model_runtime.prompt import assemble_ids, encode_repo_context
    from model_runtime.retrieval import context_for

    snippets = context_for(index, path, before + parts.prefix, parts.suffix)
    context = encode_repo_context(
        tokenizer, template, snippets, path=path, budget=budget, repo_name=index.name
    )
    if context is None or template.end_id is None:
        return None
    prefix = ("" if context.qwen else header) + parts.prefix
    return [
        *assemble_ids(tokenizer, template, prefix, parts.suffix, spm=parts.spm, context=context),
        *encode_infill_text(tokenizer, parts.middle),
        template.end_id,
    ]


def build_examples(
    records: Iterable[dict[str, Any]],
    tokenizer: Any,
    template: TrainingTemplate,
    *,
    context_len: int,
    fim_rate: float = 0.9,
    spm_rate: float = 0.5,
    seed: int = 0,
    repo_context_tokens: int = 384,
    repo_name: str = "",
) -> tuple[list[Example], ExampleStats]:
    """Turn file records into training sequences of at most ``context_len`` tokens each.

    The FIM draw for a chunk is seeded by (seed, path, chunk index), so it is stable across runs
    and independent of record order. With ``repo_context_tokens`` > 0 (and a template with FIM
    tokens), FIM examples get repository context from the *other* given records, at most
    ``min(repo_context_tokens, context_len // 4)`` tokens (see the module doc's split rule).
    """
    records = list(records)
    overhead = len(template.encode_training(tokenizer, "", "", "", spm=False))
    overhead = max(overhead, len(_plain_ids(tokenizer, template, "")))
    context_budget = min(repo_context_tokens, context_len // REPO_CONTEXT_SHARE)
    index = None
    if context_budget > 0 and getattr(template, "supports_fim", False):
        from model_runtime.retrieval import index_records

        index = index_records(records, name=repo_name)
        if len(index) < 2:
            index = None  # one file: there is no *other* file to take context from
    stats = ExampleStats()
    examples: list[Example] = []
    for rec in records:
        path = str(rec.get("file_path", ""))
        content = rec.get("content")
        if rec.get("source", "file") != "file" or not isinstance(content, str) or not content:
            stats.skipped_paths.append(path)
            continue
        header = path_header(path, rec.get("language"))
        header_tokens = len(tokenizer(header, add_special_tokens=False)["input_ids"])
        budget = context_len - overhead - header_tokens - _SPLIT_SLACK_TOKENS
        if index is not None:
            budget -= context_budget
        stats.files += 1
        before = ""
        for idx, chunk in enumerate(chunk_text(content, tokenizer, budget)):
            rng = random.Random(f"{seed}:{path}:{idx}")
            parts = fim_split(chunk, rng, fim_rate=fim_rate, spm_rate=spm_rate)
            ids = None
            if index is not None and parts.fim:
                ids = _context_ids(
                    tokenizer, template, index, parts, header,
                    path=path, before=before, budget=context_budget,
                )  # fmt: skip
                stats.with_context += ids is not None
            if ids is None:
                ids = encode_parts(parts, header, tokenizer, template)
            before += chunk
            if len(ids) > context_len:
                ids = ids[:context_len]
                stats.truncated += 1
            examples.append(Example(input_ids=ids, path=path, fim=parts.fim, spm=parts.spm))
            stats.chunks += 1
            stats.fim += int(parts.fim)
            stats.spm += int(parts.spm)
            stats.tokens += len(ids)
    return examples, stats
