"""Known secrets: a value identified once is redacted wherever else it appears.

:class:`KnownSecrets` holds the workspace's values in memory and finds them in JSON record
lines; what it persists per value is a salted, slow digest and a 4-character anchor, never the
value. The catalogue side (table, salt, propagation inside a transaction) is
:mod:`dataset.known_secrets`.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
from collections.abc import Iterable

from dataset.secrets.names import placeholder
from dataset.secrets.redaction import PLACEHOLDER
from dataset.secrets.shannon import high_entropy

KNOWN_KIND = "known_secret"
PROPAGATE_MIN_LENGTH = 8
_ANCHOR = 4
_KDF_ITERATIONS = 2000
_IDENTIFIER_ONLY = re.compile(r"[A-Za-z_][A-Za-z_.]*")
_ANCHOR_RARE = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZjkqvwxz+/=_-!@#$%^&*~")


_HOST_LIKE = re.compile(r"[\w.\-]+(?::\d+)?")


def propagatable(value: str) -> bool:
    """Distinctive enough to be redacted everywhere, not only where it was found.

    8+ characters without spaces or escapes, not a word, number, name, host, path or
    placeholder, and either three character classes (``hunter2-Xy9``) or random-looking. So
    ``password: postgres`` is redacted where it is assigned, but "postgres" (or a
    ``password = "pass; pass"`` false hit) is not hunted down in every other file.
    """
    if value.startswith("-----BEGIN"):
        return True
    if len(value) < PROPAGATE_MIN_LENGTH or value.startswith("[REDACTED:"):
        return False
    if any(c.isspace() for c in value) or "\\" in value or placeholder(value):
        return False
    if value.isdigit() or _IDENTIFIER_ONLY.fullmatch(value):
        return False
    if ("." in value or ":" in value) and _HOST_LIKE.fullmatch(value):
        return False
    classes = (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )
    return classes >= 3 or high_entropy(value)


def escape_json(value: str) -> str:
    """How ``value`` appears inside a JSON string written by ``records.dumps``."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _choose_anchor(escaped: str) -> int:
    """Offset of the ``_ANCHOR`` characters least likely to occur elsewhere (digits, capitals)."""
    best, best_score = 0, -1
    for i in range(min(len(escaped), 64) - _ANCHOR + 1):
        score = sum(c in _ANCHOR_RARE for c in escaped[i : i + _ANCHOR])
        if score > best_score:
            best, best_score = i, score
    return best


class KnownSecrets:
    """The set of secret values identified anywhere in a workspace or its history.

    Values live in memory only. What is persisted (:meth:`rows`) per value is a salted
    PBKDF2 digest of its JSON-escaped form, its length and a 4-character anchor with its offset:
    enough to recognise the value again in a record (find the anchor, hash the candidate) without
    storing it. Matching works on JSON record lines, so escaping is never a concern.
    """

    def __init__(self, salt: bytes) -> None:
        self.salt = salt
        self._plain: dict[str, str] = {}  # escaped value -> digest
        self._rows: dict[str, tuple[int, str, int]] = {}  # digest -> (length, anchor, offset)
        self._hashed: dict[str, list[tuple[str, int, int]]] = {}  # anchor -> (digest, len, off)
        self._misses: set[str] = set()

    def __len__(self) -> int:
        return len(self._rows)

    def digest(self, escaped: str) -> str:
        """Salted, deliberately slow digest of an escaped value."""
        raw = escaped.encode("utf-8", "surrogatepass")
        return hashlib.pbkdf2_hmac("sha256", raw, self.salt, _KDF_ITERATIONS).hex()[:40]

    def load(self, rows: Iterable[tuple[str, int, str, int]]) -> None:
        """Add persisted ``(digest, length, anchor, offset)`` rows (values still unknown)."""
        for digest, length, anchor, offset in rows:
            if digest not in self._rows:
                self._rows[digest] = (length, anchor, offset)
                self._hashed.setdefault(anchor, []).append((digest, length, offset))

    def add(self, value: str) -> bool:
        """Remember a secret value; True when it was not known before (also not as a digest)."""
        if not propagatable(value):
            return False
        escaped = escape_json(value)
        if escaped in self._plain:
            return False
        digest = self.digest(escaped)
        self._plain[escaped] = digest
        if digest in self._rows:
            return False
        offset = _choose_anchor(escaped)
        self._rows[digest] = (len(escaped), escaped[offset : offset + _ANCHOR], offset)
        return True

    def rows(self) -> list[tuple[str, int, str, int]]:
        """``(digest, length, anchor, offset)`` for every known value (what is persisted)."""
        return [(d, n, a, o) for d, (n, a, o) in self._rows.items()]

    def escaped_of(self, digest: str) -> str | None:
        """The escaped value of a digest, when it has been seen in this process."""
        for escaped, d in self._plain.items():
            if d == digest:
                return escaped
        return None

    def scan(self, lines: list[str]) -> dict[int, set[str]]:
        """``{line index: escaped values found}`` over JSON record lines.

        One ``bytes.find`` pass per value over the UTF-8 of all lines joined (bytes: a ``str``
        with any non-ASCII character is searched several times slower).
        """
        hits: dict[int, set[str]] = {}
        if not lines or not self._rows:
            return hits
        encoded = [line.encode("utf-8", "surrogatepass") for line in lines]
        big = b"\n".join(encoded)
        starts: list[int] = []
        pos = 0
        for line in encoded:
            starts.append(pos)
            pos += len(line) + 1

        def found(at: int, escaped: str) -> None:
            hits.setdefault(bisect.bisect_right(starts, at) - 1, set()).add(escaped)

        for escaped in self._plain:
            needle = escaped.encode("utf-8", "surrogatepass")
            at = big.find(needle)
            while at != -1:
                found(at, escaped)
                at = big.find(needle, at + len(needle))
        for anchor, entries in list(self._hashed.items()):
            needle = anchor.encode("utf-8", "surrogatepass")
            at = big.find(needle)
            while at != -1:
                for digest, length, offset in list(entries):
                    candidate = self._candidate(big, at, length, offset)
                    if candidate is None or candidate in self._misses:
                        continue
                    if candidate in self._plain or self.digest(candidate) == digest:
                        self._recovered(candidate, digest, anchor)
                        found(at, candidate)
                    elif len(self._misses) < 100_000:
                        self._misses.add(candidate)
                at = big.find(needle, at + 1)
        return hits

    @staticmethod
    def _candidate(big: bytes, at: int, length: int, offset: int) -> str | None:
        """The ``length``-character string whose character ``offset`` is at byte ``at``."""
        # Offsets and lengths count characters; walk back over UTF-8 continuation bytes.
        start = at
        for _ in range(offset):
            start -= 1
            while start > 0 and 0x80 <= big[start] < 0xC0:
                start -= 1
            if start < 0:
                return None
        chunk = big[start : start + 4 * length].decode("utf-8", "ignore")[:length]
        return chunk if len(chunk) == length else None

    def _recovered(self, escaped: str, digest: str, anchor: str) -> None:
        """A persisted value seen again: match it directly from now on."""
        self._plain[escaped] = digest
        entries = [e for e in self._hashed.get(anchor, []) if e[0] != digest]
        if entries:
            self._hashed[anchor] = entries
        else:
            self._hashed.pop(anchor, None)

    def redact_record(self, line: str, escaped_values: Iterable[str]) -> tuple[str, int]:
        """Replace known values in a record's ``content`` (and ``message``); ``(line, count)``."""
        record = json.loads(line)
        values = sorted((json.loads(f'"{e}"') for e in escaped_values), key=len, reverse=True)
        count = 0
        changed = False
        placeholder_text = PLACEHOLDER.format(kind=KNOWN_KIND)
        for field in ("content", "message"):
            text = record.get(field)
            if not isinstance(text, str):
                continue
            for value in values:
                n = text.count(value)
                if n:
                    text = text.replace(value, placeholder_text)
                    changed = True
                    if field == "content":
                        count += n
            record[field] = text
        if not changed:
            return line, 0
        record["redactions"] = int(record.get("redactions", 0)) + count
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")), count
