"""What a name or a value says by itself: secret-looking identifiers and placeholder values."""

from __future__ import annotations

import functools
import re

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
