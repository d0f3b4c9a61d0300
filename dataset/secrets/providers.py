"""Provider patterns: the token table (AWS, GitHub, Stripe, ...) and the other fixed detectors.

The text is scanned once for 20+-character runs of the base64 alphabet (a translated-bytes
``find``): each run is offered to the generic rule, a spaced JWT header starting one is decoded,
and runs with a digit open a window in which the combined token pattern is tried.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from dataset.secrets.generic import generic_span
from dataset.secrets.jwt import JWT_LOOSE, jwt_at
from dataset.secrets.names import placeholder


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


def token_spans(text: str, lowered: bytes) -> list[tuple[int, int, str]]:
    """Provider tokens, generic literals and spaced JWTs, from one scan for base64-alphabet runs.

    ``lowered`` is the lower-cased copy of ``text`` with one byte per character.
    """
    spans: list[tuple[int, int, str]] = []
    runs = lowered.translate(_RUN_TABLE)
    windows: list[tuple[int, int]] = []
    hash_file: list[bool | None] = [None]
    pos = runs.find(_RUN)
    while pos != -1:
        end = runs.find(b" ", pos + 20)
        end = len(runs) if end == -1 else end
        chunk = text[pos:end]
        if chunk.startswith(JWT_LOOSE):  # a header with spaces or newlines: '{ "alg"', '{\n'
            jwt = jwt_at(text, pos)
            if jwt is not None:
                spans.append(jwt)
                pos = runs.find(_RUN, jwt[1])
                continue
        has_digit = _DIGIT.search(chunk) is not None
        # Generic literals: one letter case without digits is a word or an identifier
        # ("format_exception_only", "MAX_RETRIES_EXCEEDED"); skip those without a closer look.
        if has_digit or not (chunk.islower() or chunk.isupper()):
            generic = generic_span(text, pos, end, hash_file)
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


def detector_spans(text: str, seen_words: set[bytes]) -> list[tuple[int, int, str]]:
    """Matches of :data:`DETECTORS`; ``seen_words`` are the keywords present (gate ``hints``)."""
    spans: list[tuple[int, int, str]] = []
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
    return spans
