"""Secret handling: files that are secrets by nature, and redaction of secrets inside text.

Why not detect-secrets: measured on this machine it scans 0.04-0.06 MB/s (its plugins run one
line at a time through every detector and filter), 170x below the 10 MB/s build goal. These
focused detectors cover the same providers with a few compiled regexes over the whole text and
run at well over 50 MB/s. Look-alikes (UUIDs, git SHAs, digests, colours) are never matched by a
provider pattern, and the entropy rule only fires on values bound to a secret-looking name.
"""

from __future__ import annotations

import fnmatch
import functools
import math
import re
from collections import Counter
from collections.abc import Callable
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
_RUN_TABLE = bytes(
    ord("a") if chr(i).isascii() and (chr(i).isalnum() or chr(i) in "_-") else ord(" ")
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
    pos = runs.find(_RUN)
    while pos != -1:
        end = runs.find(b" ", pos + 20)
        end = len(runs) if end == -1 else end
        # Every provider token has digits in its long run (a random 20+ character string
        # without one has probability < 1 %); identifiers such as "format_exception_only" don't.
        chunk = text[pos:end]
        if _DIGIT.search(chunk) is None or chunk.isdigit():
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


_GENERIC_KINDS = frozenset({"secret_assignment", "bearer_token", "connection_string_password"})


def find_secrets(text: str, raw: bytes | None = None) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, kind)`` spans of secrets, sorted by start.

    ``raw`` is ``text.encode("ascii", "replace")`` when the caller already has it.
    """
    # One byte per character (non-ASCII becomes "?"), so byte offsets are text offsets.
    lowered = (raw if raw is not None else text.encode("ascii", "replace")).lower()
    seen_words: set[bytes] = set()
    spans = _assignment_spans(text, lowered, seen_words)
    spans += _token_spans(text, lowered)
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
    spans = find_secrets(text, raw)
    if not spans:
        return text, 0
    out: list[str] = []
    pos = 0
    for start, end, kind in spans:
        out.append(text[pos:start])
        out.append(PLACEHOLDER.format(kind=kind))
        pos = end
    out.append(text[pos:])
    return "".join(out), len(spans)
