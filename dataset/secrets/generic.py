"""The generic rule: credential-like literals in base64-alphabet runs, judged in their context.

A run is a candidate when it stands as a literal (quoted, assigned, an argument, a comment word,
a random segment of a URL path); :func:`~dataset.secrets.literal.credential_like` decides whether
its value looks random; this module rejects hex in hash context, bare digests and the lines of
multi-line base64 blocks.
"""

from __future__ import annotations

import re

from dataset.secrets.literal import GENERIC_MIN_LENGTH, HASH_PREFIX, credential_like, wordiness

# Hex strings of digest lengths (md5 32, sha1/git 40, sha224 56, sha256 64, sha384 96,
# sha512 128) are digests unless nothing around them says "hash": a word of _DIGEST_CONTEXT on
# the same line or the one before keeps them.
_DIGEST_LENGTHS = frozenset({32, 40, 56, 64, 96, 128})
_DIGEST_CONTEXT = re.compile(
    r"sha|md5|hash|digest|checksum|crc|etag|commit|revision|\brev\b|fingerprint|integrity|"
    r"\bid\b|_id\b|ids\b|uuid|guid|version|nonce|salt|vector|expected|known|test|"
    r"\biv\b|cache|blob|tree|object|oid|ref|build|image|layer|manifest|hexdigest",
    re.IGNORECASE,
)


_GENERIC_LEFT = frozenset(" \t\n\r\"'`=:([{,>|")
_GENERIC_RIGHT = frozenset(" \t\n\r\"'`,;)]}<&|")
_QUOTES = frozenset("\"'`")


# Files about hashing (test vectors, checksum tables) hold hex digests, not keys.
_HASH_FILE = re.compile(
    r"hashlib|hexdigest|fromhex|unhexlify|\bsha\d|\bmd5|checksum|digest|\buuid|test vector",
    re.IGNORECASE,
)
_BASE64_LINE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _digest_context(text: str, start: int, hash_file: list[bool | None]) -> bool:
    line_start = text.rfind("\n", 0, max(0, text.rfind("\n", 0, start)))
    if _DIGEST_CONTEXT.search(text, line_start + 1, start) is not None:
        return True
    if hash_file[0] is None:
        hash_file[0] = _HASH_FILE.search(text) is not None
    return bool(hash_file[0])


def _in_blob(text: str, start: int, end: int, long: bool) -> bool:
    """A line of a multi-line base64 block (MIME parts, embedded images): data, not a key."""
    neighbours: list[tuple[int, int]] = []
    line_start = text.rfind("\n", 0, start) + 1
    if line_start > 0:
        neighbours.append((text.rfind("\n", 0, line_start - 1) + 1, line_start - 1))
    line_end = text.find("\n", end)
    if line_end != -1:
        next_end = text.find("\n", line_end + 1)
        neighbours.append((line_end + 1, len(text) if next_end == -1 else next_end))
    for a, b in neighbours:
        line = text[a:b].strip().strip("\"',+;()[]").strip()
        if len(line) >= (16 if long else 40) and set(line) <= _BASE64_LINE:
            return "=" not in line.rstrip("=")
    return False


def _assigned(text: str, start: int) -> bool:
    """The value follows ``=`` or ``:`` (spaces allowed in between)."""
    i = start - 1
    while i > 0 and text[i] in " \t":
        i -= 1
    return i >= 0 and text[i] in "=:"


def _path_segment_span(text: str, start: int, value: str) -> tuple[int, int, str] | None:
    """A token inside a URL path (``/v1/<token>/send``): one random segment of 20+ characters.

    Hex segments are left alone (commit and blob SHAs in URLs)."""
    if HASH_PREFIX.match(value):
        return None
    parts = value.split("/")
    offset = 0
    for i, part in enumerate(parts):
        if len(part) >= GENERIC_MIN_LENGTH and credential_like(part) == "base64":
            others = [p for j, p in enumerate(parts) if j != i and p]
            # The rest must read like a path ("v1", "api", "send"), not more base64.
            if others and all(len(p) <= 4 or wordiness(p) >= 0.6 for p in others):
                return (start + offset, start + offset + len(part), "high_entropy_string")
            return None
        offset += len(part) + 1
    return None


def generic_span(
    text: str, start: int, end: int, hash_file: list[bool | None]
) -> tuple[int, int, str] | None:
    """The credential-like literal inside the base64-alphabet run ``text[start:end]``, if any."""
    run = text[start:end]
    core = run.rstrip("=")
    eq = core.rfind("=")
    if eq != -1:  # NAME=value inside one run (env files, query strings, diff lines)
        start += eq + 1
    if start == 0 or text[start - 1] == "\n":
        while start < end and text[start] in "+-":  # diff markers, list items
            start += 1
    if end - start < GENERIC_MIN_LENGTH:
        return None
    left = text[start - 1] if start > 0 else "\n"
    if left in "+-" and (start < 2 or text[start - 2] == "\n"):
        left = "\n"
    right = text[end] if end < len(text) else "\n"
    if left not in _GENERIC_LEFT:
        # A URL's host ends the run with "."; its path may still hold a token.
        if left == "." and "/" in text[start:end] and right in _GENERIC_RIGHT:
            return _path_segment_span(text, start, text[start:end])
        return None
    if right not in _GENERIC_RIGHT and not (
        right == "." and (end + 1 >= len(text) or text[end + 1] in " \t\r\n")
    ):
        return None
    if left == ":" and HASH_PREFIX.search(text, max(0, start - 8), start):
        return None  # sha256:<digest>
    if left in _QUOTES and right != left and right not in " \t\n\r":
        return None
    value = text[start:end]
    kind = credential_like(value)
    if kind is None:
        return _path_segment_span(text, start, value) if "/" in value else None
    if kind == "hex":
        if _digest_context(text, start, hash_file):
            return None
        if len(value) in _DIGEST_LENGTHS and left not in _QUOTES and not _assigned(text, start):
            return None  # a bare git SHA / digest in prose or a log line
    elif _in_blob(text, start, end, len(value) >= 40):
        return None
    return (start, end, "high_entropy_string")
