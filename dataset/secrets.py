"""Secret handling: files that are secrets by nature, and redaction of secrets inside text.

Three kinds of detector, all run over the whole text (no per-line loop):

- provider patterns (AWS, GitHub, Slack, Stripe, PEM blocks, URL passwords, ...) and
  keyword-anchored assignments (``password = "..."``, ``API_TOKEN: ...``);
- a generic high-entropy rule: any quoted or assigned literal that looks like a credential by
  its length, alphabet and Shannon entropy (detect-secrets' ``Base64HighEntropyString`` /
  ``HexHighEntropyString`` idea, with an entropy limit that depends on the length and alphabet)
  is redacted whatever its variable is called; UUIDs, digests, hashes in hash context,
  colours, sequential strings, identifiers, paths and base64 of ordinary text are not;
- JWTs recognised by their header (``eyJ...`` that base64url-decodes to JSON with ``alg``).

:class:`KnownSecrets` is the workspace-wide set of values already identified as secrets; it
redacts them wherever else they appear (see ``dataset.known_secrets``). It is persisted as
salted, slow hashes plus a 4-character anchor per value, never the values.

Why not detect-secrets: measured on this machine it scans 0.04-0.06 MB/s (its plugins run one
line at a time through every detector and filter), 170x below the 10 MB/s build goal.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import fnmatch
import functools
import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

PLACEHOLDER = "[REDACTED:{kind}]"

SECRET_FILE_NAMES = frozenset(
    {".npmrc", ".pypirc", ".netrc", "_netrc", ".git-credentials", ".pgpass", ".htpasswd",
     ".dockercfg", "credentials", "credentials.json", "credentials.yml", "credentials.yaml",
     "kubeconfig", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "secrets.yml", "secrets.yaml",
     "secrets.json", "secrets.toml", ".secrets", "client_secret.json", "service-account.json",
     "terraform.tfstate", "terraform.tfstate.backup", ".boto", ".s3cfg"}
)  # fmt: skip
SECRET_FILE_GLOBS = (
    ".env", ".env.*", "*.env", ".envrc", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks",
    "*.keystore", "*.ppk", "*.kubeconfig", "kubeconfig.*", "*.tfvars", "*.tfstate",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.keytab", "*credentials*.json",
    "service-account*.json", "*.gpg", "*.asc", "*.ovpn",
)  # fmt: skip
_SECRET_GLOB_RE = re.compile("|".join(fnmatch.translate(g) for g in SECRET_FILE_GLOBS))
SECRET_FILE_PATHS = (".kube/config", ".docker/config.json", ".aws/credentials", ".aws/config")


def secret_file(path: str) -> bool:
    """True for files that are secrets by nature and are left out whole."""
    name = path.rsplit("/", 1)[-1]
    lower = name.lower()
    if lower in SECRET_FILE_NAMES:
        return True
    if any(path == p or path.endswith("/" + p) for p in SECRET_FILE_PATHS):
        return True
    return _SECRET_GLOB_RE.match(lower) is not None


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


_TOKENISH = re.compile(r"[A-Za-z0-9+/=_\-.~:]{12,}")


def high_entropy(value: str) -> bool:
    """A random-looking token: 12+ token characters, letters and digits, high entropy."""
    if not _TOKENISH.fullmatch(value):
        return False
    if not (re.search(r"[0-9]", value) and re.search(r"[A-Za-z]", value)):
        return len(value) >= 20 and entropy(value) >= 4.0
    limit = 3.0 if re.fullmatch(r"[0-9a-fA-F]+", value) else 3.3
    return entropy(value) >= limit


# -- generic high-entropy literals ---------------------------------------------------------
# detect-secrets flags quoted base64 strings with entropy >= 4.5 and hex strings >= 3.0 bits per
# character. A fixed limit misses short tokens (a random 20-character base62 string has ~4.0 bits
# per character: the plug-in entropy of a short string is bounded by log2(length)) and flags
# long identifiers. Here the limit is the *expected* entropy of a random string of the same
# length over the same alphabet minus a margin (keeps ~99 % of random strings), and structure
# tests reject what random strings do not look like: words, paths, sequences, text.

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
_HASH_PREFIX = re.compile(r"(?:sha\d{0,3}|md5|blake2[bs]?|sha3|xxh\d*|crc\d*)[-_:]", re.IGNORECASE)
_SEQUENCES = (
    "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/",
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ+/",
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "01234567890123456789",
    "0123456789ABCDEF0123456789ABCDEF",
    "ZYXWVUTSRQPONMLKJIHGFEDCBAZYXWVUTSRQPONMLKJIHGFEDCBA9876543210",
    "FEDCBA9876543210FEDCBA9876543210",
)
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


@functools.lru_cache(maxsize=8192)
def expected_entropy(length: int, alphabet: int) -> float:
    """Mean Shannon entropy (bits/char) of a uniformly random string over ``alphabet`` symbols."""
    if alphabet <= 1 or length <= 1:
        return 0.0
    p = 1.0 / alphabet
    pmf = (1.0 - p) ** length
    total = 0.0
    for x in range(1, length + 1):
        pmf *= (length - x + 1) / x * p / (1.0 - p)
        q = x / length
        total -= pmf * q * math.log2(q)
    return alphabet * total


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


def _wordy(value: str) -> float:
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
    return bool(parts) and sum(_wordy(p) for p in parts) / len(parts) >= 0.6


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
    if value.startswith(("0x", "0X")) or _HASH_PREFIX.match(value) or _UUID.search(value):
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
    wordy = _wordy(value)
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
    if _HASH_PREFIX.match(value):
        return None
    parts = value.split("/")
    offset = 0
    for i, part in enumerate(parts):
        if len(part) >= GENERIC_MIN_LENGTH and credential_like(part) == "base64":
            others = [p for j, p in enumerate(parts) if j != i and p]
            # The rest must read like a path ("v1", "api", "send"), not more base64.
            if others and all(len(p) <= 4 or _wordy(p) >= 0.6 for p in others):
                return (start + offset, start + offset + len(part), "high_entropy_string")
            return None
        offset += len(part) + 1
    return None


def _generic_span(
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
    if left == ":" and _HASH_PREFIX.search(text, max(0, start - 8), start):
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


# -- JWT by header --------------------------------------------------------------------------
# A JOSE header is a JSON object: base64url of '{"' is "eyJ", of '{ "' "eyAi", of '{\n' "ewo".
_JWT_MARKER = b"eyJ"  # compact headers; the rarer spaced ones are found by the run scan
_JWT_LOOSE = ("eyAi", "ewo", "ew0K")
_JWT = re.compile(r"[A-Za-z0-9_\-]{10,}={0,2}((?:\.[A-Za-z0-9_\-]*={0,2}){1,4})")


def _jwt_header(segment: str) -> bool:
    try:
        data = base64.urlsafe_b64decode(segment.rstrip("=") + "=" * (-len(segment.rstrip("=")) % 4))
        obj = json.loads(data)
    except (ValueError, binascii.Error):
        return False
    return isinstance(obj, dict) and ("alg" in obj or "enc" in obj)


def _jwt_at(text: str, pos: int) -> tuple[int, int, str] | None:
    """The JWT starting at ``pos`` if its first segment is a JOSE header."""
    before = text[pos - 1] if pos > 0 else " "
    if before.isalnum() or before in "_-":
        return None
    m = _JWT.match(text, pos)
    if m is None or len(m.group(1)) <= 1 or not _jwt_header(text[pos : m.start(1)]):
        return None
    return (pos, m.end(), "jwt")


def _jwt_spans(raw: bytes, text: str) -> list[tuple[int, int, str]]:
    """JWTs with a compact header (``eyJ``); ``raw`` has one byte per character."""
    spans: list[tuple[int, int, str]] = []
    pos = raw.find(_JWT_MARKER)
    while pos != -1:
        span = _jwt_at(text, pos)
        if span is not None:
            spans.append(span)
        pos = raw.find(_JWT_MARKER, span[1] if span else pos + 3)
    return spans


_PASSWORD_WORDS = frozenset({"password", "passwd", "passphrase", "passw"})
# Ambiguous words ("PassStateEntered", "MODULE_PWD_STATE") count only as the last part of a name.
_PASSWORD_SUFFIXES = frozenset({"pass", "pwd", "pw"})
_SECRET_WORDS = frozenset(
    {"secret", "secrets", "token", "tokens", "apikey", "credential", "credentials", "auth",
     "authorization", "bearer", "privatekey", "accesskey", "secretkey", "sessionkey",
     "passcode", "webhook", "dsn"}
)  # fmt: skip
_KEY_QUALIFIERS = frozenset(
    {"api", "access", "secret", "private", "signing", "encryption", "master", "auth", "client",
     "app", "account", "storage", "license", "session", "consumer", "subscription", "shared"}
)  # fmt: skip
_NAME_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


@functools.lru_cache(maxsize=4096)
def name_kind(name: str) -> str | None:
    """``"password"``, ``"secret"`` or ``None`` for an identifier such as ``DB_PASSWORD``."""
    parts = [p.lower() for p in _NAME_SPLIT.split(name) if p]
    if any(p in _PASSWORD_WORDS for p in parts) or (parts and parts[-1] in _PASSWORD_SUFFIXES):
        return "password"
    if any(p in _SECRET_WORDS for p in parts):
        return "secret"
    if "key" in parts and any(p in _KEY_QUALIFIERS for p in parts):
        return "secret"
    return None


_PLACEHOLDER_VALUE = re.compile(
    r"^(?:|\*+|x+|\.+|<[^>]*>|\$\{[^}]*\}|\$[A-Za-z_]\w*|\{\{?[^}]*\}\}?|%\(?\w*\)?s|"
    r"\[REDACTED:[a-z_]+\]|none|null|nil|true|false|changeme|example|your[_-].*|.*placeholder.*|"
    r"pass(?:word)?|passwd|pwd|secret|token|user(?:name)?|test|dummy|foo|bar|xxx+)$",
    re.IGNORECASE,
)


_FORMAT_SPEC = re.compile(r"%\(?\w*\)?[sdrif]|\{[^}]*\}|\$\{?\w+\}?")


def placeholder(value: str) -> bool:
    """Values that are templates or stand-ins, not secrets: ``${DB_PASS}``, ``%s:%s``, ``****``."""
    if _PLACEHOLDER_VALUE.match(value):
        return True
    rest = _FORMAT_SPEC.sub("", value)
    return not any(c.isalnum() for c in rest) or (" " in value.strip() and len(value) > 40)


@dataclass(frozen=True)
class Detector:
    """One compiled pattern; ``group`` is the part replaced; ``check`` may veto a match.

    Patterns start with a literal where possible: CPython's ``re`` then skips ahead with a fast
    substring search (hundreds of MB/s) instead of trying every offset (2-25 MB/s). Leading word
    boundaries are checked afterwards (``boundary``) for the same reason. ``hints`` (lower-case
    literals) gate the few patterns that cannot start with a literal.
    """

    kind: str
    regex: re.Pattern[str]
    group: int = 0
    check: Callable[[re.Match[str]], bool] | None = None
    boundary: bool = True
    hints: tuple[bytes, ...] = ()


def _url_password_check(m: re.Match[str]) -> bool:
    return not placeholder(m.group(1))


def _bearer_check(m: re.Match[str]) -> bool:
    return high_entropy(m.group(1))


def _generic_sk_check(m: re.Match[str]) -> bool:
    body = m.group(0)
    return bool(re.search(r"[0-9]", body) and re.search(r"[A-Za-z]{2}", body))


_END = r"(?![\w-])"
# Provider tokens all contain a run of 20+ ``[A-Za-z0-9_-]``: find such runs at C speed on a
# translated copy of the text and try one combined pattern only in a window around each run.
_TOKEN_PATTERNS: dict[str, str] = {
    "aws_access_key": r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA)[0-9A-Z]{16}" + _END,
    "gcp_api_key": r"AIza[0-9A-Za-z_\-]{35}" + _END,
    "gcp_oauth_secret": r"GOCSPX-[0-9A-Za-z_\-]{28}" + _END,
    "github_token": r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})" + _END,
    "gitlab_token": r"gl(?:pat|ptt|dt|rt|cbt|imt|oas)-[A-Za-z0-9_\-]{20,}" + _END,
    "npm_token": r"npm_[A-Za-z0-9]{36}" + _END,
    "pypi_token": r"pypi-AgE[A-Za-z0-9_\-]{50,}",
    "slack_token": r"xox[abposre]-[A-Za-z0-9-]{10,}",
    "stripe_key": r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,}" + _END,
    "sendgrid_key": r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}" + _END,
    "twilio_key": r"SK[0-9a-f]{32}" + _END,
    "openai_key": r"sk-(?:proj-|svcacct-|admin-|ant-(?:api\d\d-)?)?[A-Za-z0-9_\-]{32,}" + _END,
    "huggingface_token": r"hf_[A-Za-z0-9]{34,}" + _END,
    "mailchimp_key": r"[0-9a-f]{32}-us[0-9]{1,2}" + _END,
    "telegram_token": r"[0-9]{8,10}:AA[A-Za-z0-9_\-]{33}" + _END,
    "square_token": r"sq0(?:atp|csp)-[A-Za-z0-9_\-]{22,}" + _END,
    "shopify_token": r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}" + _END,
    "jwt": r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{16,}",
}
# Literals at least one of which every token pattern contains (cheap pre-check per window).
_TOKEN_MARKERS = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "AIza", "GOCSPX-", "gh", "github_pat_",
                  "gl", "npm_", "pypi-", "xox", "k_live_", "k_test_", "SG.", "SK", "sk-", "hf_",
                  "-us", ":AA", "sq0", "shp", "eyJ")  # fmt: skip
TOKEN_REGEX = re.compile("|".join(f"(?P<{k}>{v})" for k, v in _TOKEN_PATTERNS.items()))
_RUN = b"a" * 20
# Runs of the base64 alphabet (plus "_-"): provider tokens and generic literals both live in one.
_RUN_TABLE = bytes(
    ord("a") if chr(i).isascii() and (chr(i).isalnum() or chr(i) in "_-+/=") else ord(" ")
    for i in range(256)
)
_WINDOW_BACK = 12  # a token starts at most this far before its long run ("SG.", "<bot id>:")
_DIGIT = re.compile(r"[0-9]")

DETECTORS: tuple[Detector, ...] = (
    Detector(
        "private_key",
        re.compile(
            r"-----BEGIN[A-Z0-9 ]{0,32}PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[A-Za-z0-9+/=\s\\:,\-]{32,16384}?-----END[A-Z0-9 ]{0,32}PRIVATE KEY(?: BLOCK)?-----"
            r"|[A-Za-z0-9+/=\s\\:,\-]{32,16384})"
        ),
        boundary=False,
    ),
    Detector(
        "azure_connection_string",
        re.compile(r"Key=([A-Za-z0-9+/%]{20,}={0,2})"),
        1,
        lambda m: m.string[max(0, m.start() - 12) : m.start()].endswith(("Account", "SharedAccess")),
        boundary=False,
    ),
    Detector("azure_connection_string", re.compile(r"sig=([A-Za-z0-9+/%]{20,}={0,2})"), 1),
    Detector(
        "webhook_url",
        re.compile(
            r"https://(?:hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/]{20,}"
            r"|discord(?:app)?\.com/api/webhooks/[0-9]+/[A-Za-z0-9_\-]{30,})"
        ),
        boundary=False,
    ),
    Detector(
        "url_password",
        re.compile(r"://[^\s:/@\"'<>]{1,128}:([^\s@/\"'<>]{1,256})@[\w.\-]"),
        1,
        _url_password_check,
        boundary=False,
    ),
)  # fmt: skip


def _token_spans(text: str, lowered: bytes) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    runs = lowered.translate(_RUN_TABLE)
    windows: list[tuple[int, int]] = []
    hash_file: list[bool | None] = [None]
    pos = runs.find(_RUN)
    while pos != -1:
        end = runs.find(b" ", pos + 20)
        end = len(runs) if end == -1 else end
        chunk = text[pos:end]
        if chunk.startswith(_JWT_LOOSE):  # a header with spaces or newlines: '{ "alg"', '{\n'
            jwt = _jwt_at(text, pos)
            if jwt is not None:
                spans.append(jwt)
                pos = runs.find(_RUN, jwt[1])
                continue
        has_digit = _DIGIT.search(chunk) is not None
        # Generic literals: one letter case without digits is a word or an identifier
        # ("format_exception_only", "MAX_RETRIES_EXCEEDED"); skip those without a closer look.
        if has_digit or not (chunk.islower() or chunk.isupper()):
            generic = _generic_span(text, pos, end, hash_file)
            if generic is not None:
                spans.append(generic)
        # Every provider token has digits in its long run (a random 20+ character string
        # without one has probability < 1 %); identifiers such as "format_exception_only" don't.
        if not has_digit or chunk.isdigit():
            pos = runs.find(_RUN, end)
            continue
        start = max(0, pos - _WINDOW_BACK)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
        pos = runs.find(_RUN, end)
    for start, end in windows:
        window = text[start:end]
        if not any(marker in window for marker in _TOKEN_MARKERS):
            continue
        for m in TOKEN_REGEX.finditer(text, start, end):
            kind = m.lastgroup or "token"
            before = text[m.start() - 1] if m.start() > 0 else " "
            if before.isalnum() or before == "_":
                continue
            if kind == "openai_key" and not _generic_sk_check(m):
                continue
            spans.append((m.start(), m.end(), kind))
    return spans


# Assignments are found from secret words outward (a regex scanning for an identifier at every
# offset runs at 2 MB/s): ``name = "value"``, ``"name": 'value'``, ``name := "v"``, ``NAME=value``.
_KEYWORDS = (b"pass", b"pwd", b"secret", b"token", b"key", b"auth", b"credential", b"bearer",
             b"dsn", b"webhook")  # fmt: skip
_IDENT_NEXT = re.compile(
    r"[A-Za-z0-9_.\-]*(?=[\"']?\]?[ \t]*[:=!]|[\"'][ \t]*,|[ \t]+[A-Za-z0-9_\-.=+/~]{16})"
)
_IDENT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_QUOTED_TAIL = re.compile(
    r"[\"']?\]?[ \t]{0,4}(?::=|=>|==|!=|[:=])[ \t]{0,4}[rbfuRBFU]{0,2}([\"'`])((?:(?!\1)[^\n\\]|\\.){1,512})\1"
)
_UNQUOTED_TAIL = re.compile(r"[ \t]*[:=][ \t]*([^\s\"'`#,;{}\[\]]{4,512})[ \t]*(?:\r?\n|$)")
_PAIR_TAIL = re.compile(r"[\"'][ \t]*,[ \t]*([\"'])((?:(?!\1)[^\n\\]|\\.){1,512})\1")
_CONN_TAIL = re.compile(r"=([^;\"'\s,()]{1,256})(?=;|\"|'|\s|$)")
_BEARER_TAIL = re.compile(r"[ \t]+([A-Za-z0-9_\-.=+/~]{16,})")
_LINE_LEAD = re.compile(r"[ \t]*(?:export[ \t]+|-[ \t]+)?")


def _assignment_spans(
    text: str, lowered: bytes, seen_words: set[bytes]
) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    seen: set[int] = set()
    for kw in _KEYWORDS:
        pos = lowered.find(kw)
        if pos != -1:
            seen_words.add(kw)
        while pos != -1:
            _assignment_at(text, pos, seen, spans)
            pos = lowered.find(kw, pos + len(kw))
    return spans


def _assignment_at(text: str, pos: int, seen: set[int], spans: list[tuple[int, int, str]]) -> None:
    # Cheap exit for the common case ("keys()", "self.key in x"): no assignment follows.
    ident = _IDENT_NEXT.match(text, pos)
    if ident is None:
        return
    end = ident.end()
    start = pos
    while start > 0 and text[start - 1] in _IDENT_CHARS and pos - start < 80:
        start -= 1
    if start in seen:
        return
    seen.add(start)
    name = text[start:end]
    kind = name_kind(name)
    if kind is None:
        return
    m = _QUOTED_TAIL.match(text, end)
    if m is not None:
        value = m.group(2)
        if value == name or placeholder(value):
            return
        if kind == "password" or high_entropy(value):
            spans.append((m.start(2), m.end(2), "secret_assignment"))
        return
    if start > 0 and text[start - 1] in "\"'":
        # ("smtp_password", "value") pairs in calls and tuples
        p = _PAIR_TAIL.match(text, end)
        if p is not None and text[start - 1] == text[end] and not placeholder(p.group(2)):
            if kind == "password" or high_entropy(p.group(2)):
                spans.append((p.start(2), p.end(2), "secret_assignment"))
            return
    lname = name.lower()
    if lname in ("password", "pwd") and text.startswith("=", end):
        # Connection strings: "Server=db;User Id=sa;Password=hunter2;"
        before = text[start - 1] if start > 0 else "\n"
        c = _CONN_TAIL.match(text, end)
        if before in ";\"'\n" and c is not None and not placeholder(c.group(1)):
            spans.append((c.start(1), c.end(1), "connection_string_password"))
            return
    if lname in ("bearer", "token", "authorization: bearer"):
        b = _BEARER_TAIL.match(text, end)
        if b is not None and high_entropy(b.group(1)):
            spans.append((b.start(1), b.end(1), "bearer_token"))
            return
    line_start = text.rfind("\n", 0, start) + 1
    lead = _LINE_LEAD.match(text, line_start)
    if lead is None or lead.end() != start:
        return
    u = _UNQUOTED_TAIL.match(text, end)
    if u is None:
        return
    value = u.group(1)
    if "(" in value or placeholder(value):
        return
    if kind == "password":
        ok = not re.fullmatch(r"[a-z_][a-z0-9_.]*", value) or high_entropy(value)
    else:
        ok = high_entropy(value)
    if ok:
        spans.append((u.start(1), u.end(1), "secret_assignment"))


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
    spans = _assignment_spans(text, lowered, seen_words)
    spans += _token_spans(text, lowered)
    spans += _jwt_spans(raw, text)
    for det in DETECTORS:
        if det.hints and not seen_words.intersection(det.hints):
            continue
        for m in det.regex.finditer(text):
            start, end = m.span(det.group)
            if (
                det.boundary
                and m.start() > 0
                and (text[m.start() - 1].isalnum() or text[m.start() - 1] == "_")
            ):
                continue
            if det.check is not None and not det.check(m):
                continue
            if end > start:
                spans.append((start, end, det.kind))
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


# -- known secrets: a value identified once is redacted wherever it appears --------------------
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
