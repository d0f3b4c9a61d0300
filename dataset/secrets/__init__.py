"""Secret handling: files that are secrets by nature, and redaction of secrets inside text.

Three kinds of detector, all run over the whole text (no per-line loop), combined by
:func:`find_secrets` (:mod:`~dataset.secrets.redaction`):

- provider patterns (AWS, GitHub, Slack, Stripe, PEM blocks, URL passwords, ...:
  :mod:`~dataset.secrets.providers`) and keyword-anchored assignments (``password = "..."``,
  ``API_TOKEN: ...``: :mod:`~dataset.secrets.assignments`, names and placeholders judged by
  :mod:`~dataset.secrets.names`);
- a generic high-entropy rule: any quoted or assigned literal that looks like a credential by
  its length, alphabet and Shannon entropy (detect-secrets' ``Base64HighEntropyString`` /
  ``HexHighEntropyString`` idea, with an entropy limit that depends on the length and alphabet)
  is redacted whatever its variable is called; UUIDs, digests, hashes in hash context,
  colours, sequential strings, identifiers, paths and base64 of ordinary text are not (the value
  tests in :mod:`~dataset.secrets.literal`, the context in :mod:`~dataset.secrets.generic`,
  entropy in :mod:`~dataset.secrets.shannon`);
- JWTs recognised by their header (``eyJ...`` that base64url-decodes to JSON with ``alg``:
  :mod:`~dataset.secrets.jwt`).

:func:`secret_file` (:mod:`~dataset.secrets.files`) names the files left out whole.
:class:`KnownSecrets` (:mod:`~dataset.secrets.known`) is the workspace-wide set of values
already identified as secrets; it redacts them wherever else they appear (see
``dataset.known_secrets``). It is persisted as salted, slow hashes plus a 4-character anchor per
value, never the values.

Why not detect-secrets: measured on this machine it scans 0.04-0.06 MB/s (its plugins run one
line at a time through every detector and filter), 170x below the 10 MB/s build goal.
"""

from __future__ import annotations

from dataset.secrets.files import (
    SECRET_FILE_GLOBS,
    SECRET_FILE_NAMES,
    SECRET_FILE_PATHS,
    secret_file,
)
from dataset.secrets.known import (
    KNOWN_KIND,
    PROPAGATE_MIN_LENGTH,
    KnownSecrets,
    escape_json,
    propagatable,
)
from dataset.secrets.literal import GENERIC_MAX_LENGTH, GENERIC_MIN_LENGTH, credential_like
from dataset.secrets.names import name_kind, placeholder
from dataset.secrets.providers import DETECTORS, TOKEN_REGEX, Detector
from dataset.secrets.redaction import PLACEHOLDER, find_secrets, redact, redact_values
from dataset.secrets.shannon import entropy, expected_entropy, high_entropy

__all__ = [
    "DETECTORS", "GENERIC_MAX_LENGTH", "GENERIC_MIN_LENGTH", "KNOWN_KIND", "PLACEHOLDER",
    "PROPAGATE_MIN_LENGTH", "SECRET_FILE_GLOBS", "SECRET_FILE_NAMES", "SECRET_FILE_PATHS",
    "TOKEN_REGEX", "Detector", "KnownSecrets", "credential_like", "entropy", "escape_json",
    "expected_entropy", "find_secrets", "high_entropy", "name_kind", "placeholder",
    "propagatable", "redact", "redact_values", "secret_file",
]  # fmt: skip
