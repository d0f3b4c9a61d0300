"""The redaction driver: every detector over the whole text, overlaps merged, placeholders in.

Each detector runs over the text once (no per-line loop): secret-named assignments
(:mod:`~dataset.secrets.assignments`), the run scan for provider tokens and generic literals
(:mod:`~dataset.secrets.providers`, :mod:`~dataset.secrets.generic`), compact JWT headers
(:mod:`~dataset.secrets.jwt`) and the fixed provider detectors.
"""

from __future__ import annotations

from dataset.secrets.assignments import assignment_spans
from dataset.secrets.jwt import jwt_spans
from dataset.secrets.providers import detector_spans, token_spans

PLACEHOLDER = "[REDACTED:{kind}]"

_GENERIC_KINDS = frozenset(
    {"secret_assignment", "bearer_token", "connection_string_password", "high_entropy_string"}
)


def find_secrets(text: str, raw: bytes | None = None) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, kind)`` spans of secrets, sorted by start.

    ``raw`` is ``text.encode("ascii", "replace")`` when the caller already has it.
    """
    # One byte per character (non-ASCII becomes "?"), so byte offsets are text offsets.
    raw = raw if raw is not None else text.encode("ascii", "replace")
    lowered = raw.lower()
    seen_words: set[bytes] = set()
    spans = assignment_spans(text, lowered, seen_words)
    spans += token_spans(text, lowered)
    spans += jwt_spans(raw, text)
    spans += detector_spans(text, seen_words)
    if not spans:
        return spans
    spans.sort(key=lambda s: (s[0], -s[1]))
    merged = [spans[0]]
    for start, end, kind in spans[1:]:
        last_start, last_end, last_kind = merged[-1]
        if start < last_end:
            # Overlaps: one placeholder; name the provider rather than the generic rule.
            kind = kind if last_kind in _GENERIC_KINDS and kind not in _GENERIC_KINDS else last_kind
            merged[-1] = (last_start, max(end, last_end), kind)
        else:
            merged.append((start, end, kind))
    return merged


def redact(text: str, raw: bytes | None = None) -> tuple[str, int]:
    """The text with every secret replaced by a placeholder, and how many were replaced."""
    clean, count, _ = redact_values(text, raw)
    return clean, count


def redact_values(text: str, raw: bytes | None = None) -> tuple[str, int, list[str]]:
    """Like :func:`redact`, plus the secret values that were replaced (for :class:`KnownSecrets`)."""
    spans = find_secrets(text, raw)
    if not spans:
        return text, 0, []
    out: list[str] = []
    values: list[str] = []
    pos = 0
    for start, end, kind in spans:
        out.append(text[pos:start])
        out.append(PLACEHOLDER.format(kind=kind))
        values.append(text[start:end])
        pos = end
    out.append(text[pos:])
    return "".join(out), len(spans), values
