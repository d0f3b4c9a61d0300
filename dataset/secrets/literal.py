"""Is a literal a random credential? Length, alphabet, entropy and the shapes of non-secrets.

detect-secrets flags quoted base64 strings with entropy >= 4.5 and hex strings >= 3.0 bits per
character. A fixed limit misses short tokens (a random 20-character base62 string has ~4.0 bits
per character: the plug-in entropy of a short string is bounded by log2(length)) and flags long
identifiers. Here the limit is the *expected* entropy of a random string of the same length over
the same alphabet minus a margin (keeps ~99 % of random strings), and structure tests reject what
random strings do not look like: words, paths, sequences, text. Where the literal stands (quotes,
hash context, blobs) is judged by :mod:`dataset.secrets.generic`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re

from dataset.secrets.shannon import entropy, expected_entropy

GENERIC_MIN_LENGTH = 20
GENERIC_MAX_LENGTH = 512
_ENTROPY_MARGIN = 0.5
_HEX_CHARS = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SYMBOLS = frozenset("+/=_-")
_PIECE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HASH_PREFIX = re.compile(r"(?:sha\d{0,3}|md5|blake2[bs]?|sha3|xxh\d*|crc\d*)[-_:]", re.IGNORECASE)
_SEQUENCES = (
    "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/",
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ+/",
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "01234567890123456789",
    "0123456789ABCDEF0123456789ABCDEF",
    "ZYXWVUTSRQPONMLKJIHGFEDCBAZYXWVUTSRQPONMLKJIHGFEDCBA9876543210",
    "FEDCBA9876543210FEDCBA9876543210",
)


# The letter pairs that make up 93 % of those in the standard library's identifiers (207 of
# 676): a random string's pairs hit this set ~31 % of the time, words and names ~90 %.
_COMMON_BIGRAMS = frozenset(
    re.findall(
        "..",
        "abacadagaialamanaparasataubabebjblbobubycacechcickclcocrctcudadddedidldodsdueaecedeeef"
        "egelemenepeqeresetevewexeyfafefffiflfofrfugegigngrgshahehihoiaibicidieifigiliminioipir"
        "isitivizkelaldlelflilllolsltlulymamemimompmsnancndnenfngninnnonsntnunvoaobocodofolomon"
        "oooporosotouowpapepiplpoppprptpyqurarcrdrergrirmrnrorrrsrtrurysascseshsisospssstsusyta"
        "tctethtitotptrtstttutyuaubueuiulumunupurusutvavewawhwiwrxcxpxtypysytze",
    )
)


def wordiness(value: str) -> float:
    """Fraction of the letter pairs inside words/pieces that are common in English names."""
    pairs = 0
    common = 0
    for m in _PIECE.finditer(value):
        piece = m.group().lower()
        if piece[0].isdigit():
            continue
        for i in range(len(piece) - 1):
            pairs += 1
            common += piece[i : i + 2] in _COMMON_BIGRAMS
    return common / pairs if pairs else 0.0


def _path_like(value: str) -> bool:
    """``/usr/local/lib/python98``: segments made of words."""
    parts = [p for p in value.split("/") if len(p) >= 3]
    return bool(parts) and sum(wordiness(p) for p in parts) / len(parts) >= 0.6


_CAMEL_WORD = re.compile(r"[A-Z]?[a-z]{3,}")


def _camel_coverage(value: str) -> float:
    """Share of the characters in lower-case runs of 3+ (optionally capitalised): ~0.1 if random."""
    return sum(m.end() - m.start() for m in _CAMEL_WORD.finditer(value)) / len(value)


def _class_switches(value: str) -> float:
    """How often neighbouring characters change class (lower/upper/digit/other): ~0.6 if random."""
    prev = -1
    switches = 0
    for c in value:
        cls = 0 if c.islower() else 1 if c.isupper() else 2 if c.isdigit() else 3
        if cls != prev:
            switches += 1
            prev = cls
    return (switches - 1) / (len(value) - 1)


def _printable(data: bytes) -> bool:
    if len(data) < 6:
        return False
    # Random bytes are ~37 % printable ASCII; text is ~100 %.
    good = sum(1 for b in data if 32 <= b < 127 or b in (9, 10, 13))
    if good >= 0.75 * len(data):
        return True
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return sum(1 for c in text if c.isprintable() or c.isspace()) >= 0.9 * len(text)


def _decodes_to_text(value: str, is_hex: bool) -> bool:
    """Base64 (or hex) of ordinary text is an encoding, not a credential."""
    try:
        if is_hex:
            data = bytes.fromhex(value) if len(value) % 2 == 0 else b""
        else:
            core = value.rstrip("=")
            padded = core + "=" * (-len(core) % 4)
            if len(core) % 4 == 1:
                return False
            alt = "-" in core or "_" in core
            data = base64.urlsafe_b64decode(padded) if alt else base64.b64decode(padded)
    except (ValueError, binascii.Error):
        return False
    return _printable(data)


def _sequential(value: str) -> bool:
    """``"ABCDEF...789"``, ``"1234567890ABCDEF12345"``: a sequence covering most of the value."""
    upper = value.upper()
    size = max(12, len(value) * 2 // 3)
    return any(upper[i : i + size] in seq for seq in _SEQUENCES for i in (0, len(upper) - size))


_SEPARATORS = re.compile(r"[_\-]+")


def _separated_identifier(value: str) -> bool:
    """``N10pem_ctx_st4DOLLAR_16E``, ``rfc2047_gb2312_base64``, ``draft-ietf-mix-00``.

    Three or more parts, each of at most four runs (``N8pkcs7``): url-safe base64 also has
    ``-``/``_`` but its parts switch between cases and digits all the time.
    """
    parts = [p for p in _SEPARATORS.split(value) if p]
    if len(parts) < 3:
        return False
    return all(len(_PIECE.findall(p)) <= 4 for p in parts)


@functools.lru_cache(maxsize=8192)
def credential_like(value: str) -> str | None:
    """``"hex"`` / ``"base64"`` when ``value`` looks like a random credential, else ``None``.

    Length 20..512, an alphabet of base64/hex characters, entropy within ``_ENTROPY_MARGIN``
    of a random string's, and none of: UUID, hash-prefixed digest, sequence, all digits, words
    (identifiers such as ``AbstractSingletonProxyFactoryBean2``), a path, base64/hex of text.
    Digest-length hex is decided by the caller (it needs the surrounding line).
    """
    n = len(value)
    if n < GENERIC_MIN_LENGTH or n > GENERIC_MAX_LENGTH:
        return None
    chars = set(value)
    if not chars <= _HEX_CHARS | _LOWER | _UPPER | _SYMBOLS:
        return None
    digits = sum(1 for c in value if c in _DIGITS)
    if value.startswith(("0x", "0X")) or HASH_PREFIX.match(value) or _UUID.search(value):
        return None  # a hex number, a hash-prefixed digest, a UUID
    if _sequential(value):
        return None
    if chars <= _HEX_CHARS:
        letters = n - digits
        if digits < 2 or letters < 2:
            return None
        if entropy(value) < expected_entropy(n, 16) - _ENTROPY_MARGIN:
            return None
        return None if _decodes_to_text(value, True) else "hex"
    has_lower = not chars.isdisjoint(_LOWER)
    has_upper = not chars.isdisjoint(_UPPER)
    symbols = chars & _SYMBOLS
    letters = sum(1 for c in value if c.isalpha())
    if letters < 0.3 * n or not (digits or (has_lower and has_upper)):
        return None
    alphabet = 26 * has_lower + 26 * has_upper + 10 * bool(digits) + len(symbols)
    if entropy(value) < expected_entropy(n, alphabet) - _ENTROPY_MARGIN:
        return None
    if "//" in value or (value.startswith("/") and _path_like(value)):
        return None  # a path or URL
    if _separated_identifier(value):
        return None
    wordy = wordiness(value)
    if has_lower and has_upper:
        if _camel_coverage(value) >= 0.7:
            return None  # CamelCase words: "SendrecvmsgUDP6TestBase"
        # Random mixed case switches class ~60 % of the time and its letter pairs are mostly
        # uncommon; without digits (CamelCase names such as "PyUnicode_AsMBCSString") ask more.
        if wordy > (0.7 if digits else 0.6) or _class_switches(value) < 0.3:
            return None
    else:
        # One letter case plus digits (base36/base32): digits spread over several runs.
        digit_runs = sum(1 for m in _PIECE.finditer(value) if m.group()[0].isdigit())
        if digit_runs < 2 or digits > 0.7 * n or wordy > 0.7:
            return None
    return None if _decodes_to_text(value, False) else "base64"
