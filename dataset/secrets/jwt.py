"""JWTs recognised by their header, whatever the payload."""

from __future__ import annotations

import base64
import binascii
import json
import re

# A JOSE header is a JSON object: base64url of '{"' is "eyJ", of '{ "' "eyAi", of '{\n' "ewo".
_JWT_MARKER = b"eyJ"  # compact headers; the rarer spaced ones are found by the run scan
JWT_LOOSE = ("eyAi", "ewo", "ew0K")
_JWT = re.compile(r"[A-Za-z0-9_\-]{10,}={0,2}((?:\.[A-Za-z0-9_\-]*={0,2}){1,4})")


def _jwt_header(segment: str) -> bool:
    try:
        data = base64.urlsafe_b64decode(segment.rstrip("=") + "=" * (-len(segment.rstrip("=")) % 4))
        obj = json.loads(data)
    except (ValueError, binascii.Error):
        return False
    return isinstance(obj, dict) and ("alg" in obj or "enc" in obj)


def jwt_at(text: str, pos: int) -> tuple[int, int, str] | None:
    """The JWT starting at ``pos`` if its first segment is a JOSE header."""
    before = text[pos - 1] if pos > 0 else " "
    if before.isalnum() or before in "_-":
        return None
    m = _JWT.match(text, pos)
    if m is None or len(m.group(1)) <= 1 or not _jwt_header(text[pos : m.start(1)]):
        return None
    return (pos, m.end(), "jwt")


def jwt_spans(raw: bytes, text: str) -> list[tuple[int, int, str]]:
    """JWTs with a compact header (``eyJ``); ``raw`` has one byte per character."""
    spans: list[tuple[int, int, str]] = []
    pos = raw.find(_JWT_MARKER)
    while pos != -1:
        span = jwt_at(text, pos)
        if span is not None:
            spans.append(span)
        pos = raw.find(_JWT_MARKER, span[1] if span else pos + 3)
    return spans
