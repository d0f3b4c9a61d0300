"""Secret-named assignments: ``password = "..."``, ``"api_key": '...'``, ``TOKEN=...``, pairs.

Found from secret words outward (``bytes.find`` of each keyword in the lower-cased text); the
identifier around the word is named (:func:`~dataset.secrets.names.name_kind`) and the value after
it parsed. Connection-string passwords and ``Bearer`` tokens are recognised on the way.
"""

from __future__ import annotations

import re

from dataset.secrets.names import name_kind, placeholder
from dataset.secrets.shannon import high_entropy

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


def assignment_spans(
    text: str, lowered: bytes, seen_words: set[bytes]
) -> list[tuple[int, int, str]]:
    """Values assigned to secret-looking names; adds the keywords present to ``seen_words``."""
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
