"""One file → an :class:`Outcome`: kept with its record, or dropped with a reason.

Order matters for cost and safety: secret files and path filters are decided before the file
is opened; the size limit before it is read; a file whose mtime and size match the catalogue is
not read at all, and one whose bytes hash to the catalogued sha256 is not re-filtered.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import NamedTuple

from dataset import filters
from dataset.config import DatasetConfig
from dataset.languages import detect_language
from dataset.records import dumps, file_record
from dataset.scope import display_path, name_decodable
from dataset.secrets import find_secrets, redact_values, secret_file

KEPT = "kept"


class Outcome(NamedTuple):
    """What happened to one path; ``record`` is the JSONL line when ``status == "kept"``.

    A named tuple rather than a dataclass: a build makes several per file and ``_replace`` is
    several times cheaper than ``dataclasses.replace``.
    """

    path: str
    status: str
    size: int = 0
    mtime_ns: int = 0
    sha256: str | None = None
    language: str | None = None
    redactions: int = 0
    record: str | None = None
    detail: str = ""
    secrets: tuple[str, ...] = ()
    """Secret values found in this file (in memory only, for ``dataset.known_secrets``)."""


def path_reason(path: str, config: DatasetConfig) -> tuple[str | None, str | None]:
    """``(reason, language)``: the reason to drop a path without opening it, and its language."""
    if not name_decodable(path):
        return "undecodable_name", None
    if secret_file(path):
        return "secret_file", None
    reason = filters.path_filter(path)
    if reason:
        return reason, None
    language = detect_language(path)
    return filters.language_filter(language, config), language


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def process_file(
    root: Path, path: str, config: DatasetConfig, previous: Outcome | None = None
) -> Outcome:
    """Decide one workspace-relative path; reuse ``previous`` when the file did not change."""
    reason, language = path_reason(path, config)
    if reason:
        shown = display_path(path)
        if reason == "secret_file":
            return Outcome(shown, reason, secrets=_harvest(root, path))
        return Outcome(shown, reason, language=language)
    assert language is not None
    full = os.path.join(root, path)
    try:
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            try:
                real = os.path.realpath(full, strict=True)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return Outcome(path, "symlink_loop", detail=str(exc))
                return Outcome(path, "broken_symlink", detail=str(exc))
            if not _within(real, os.path.realpath(root)):
                return Outcome(path, "symlink_outside", detail=real)
            st = os.stat(full)
    except FileNotFoundError:
        return Outcome(path, "vanished")
    except PermissionError as exc:
        return Outcome(path, "permission_denied", detail=str(exc))
    except OSError as exc:
        reason = "symlink_loop" if exc.errno == errno.ELOOP else "unreadable"
        return Outcome(path, reason, detail=str(exc))
    if not stat.S_ISREG(st.st_mode):
        return Outcome(path, "not_regular")
    if (
        previous is not None
        and previous.mtime_ns == st.st_mtime_ns
        and previous.size == st.st_size
        and previous.sha256 is not None
    ):
        return previous
    base = Outcome(path, "", size=st.st_size, mtime_ns=st.st_mtime_ns, language=language)
    if st.st_size > config.max_file_bytes:
        return base._replace(status="too_large")
    try:
        with open(full, "rb") as fh:
            data = fh.read(config.max_file_bytes + 1)
    except FileNotFoundError:
        return base._replace(status="vanished")
    except PermissionError as exc:
        return base._replace(status="permission_denied", detail=str(exc))
    except OSError as exc:
        return base._replace(status="unreadable", detail=str(exc))
    if len(data) > config.max_file_bytes:
        return base._replace(status="too_large")
    digest = hashlib.sha256(data).hexdigest()
    base = base._replace(sha256=digest, size=len(data))
    if previous is not None and previous.sha256 == digest:
        return _touch(previous, base)
    return _content_outcome(base, data, config)


def _touch(previous: Outcome, base: Outcome) -> Outcome:
    """Same bytes, new mtime: keep the decision, refresh the metadata.

    A kept ``previous`` loaded without its record text comes back with ``record=None``; the
    caller completes it with :func:`complete_touch`.
    """
    record = previous.record
    if record is not None:
        data = json.loads(record)
        data["mtime"] = base.mtime_ns / 1e9
        record = dumps(data)
    return previous._replace(mtime_ns=base.mtime_ns, size=base.size, record=record)


def complete_touch(outcome: Outcome, stored: Outcome | None) -> Outcome:
    """Fill in the record of a touched kept file from the catalogue's full row."""
    if outcome.status != KEPT or outcome.record is not None or stored is None:
        return outcome
    return _touch(stored, outcome)


def _content_outcome(base: Outcome, data: bytes, config: DatasetConfig) -> Outcome:
    status = _content_reason(data)
    if status:
        return base._replace(status=status)
    text = filters.decode(data)
    if text is None:
        return base._replace(status="undecodable")
    assert base.language is not None and base.sha256 is not None
    raw = text.encode("ascii", "replace")  # shared by the quality filters and the redactor
    reason = filters.generated_filter(text, config) or filters.quality_filter(
        text, base.language, config, raw
    )
    if reason:
        return base._replace(status=reason)
    content, count, values = redact_values(text, raw)
    record = file_record(
        base.path, content, base.language, base.sha256, base.size, base.mtime_ns / 1e9, count
    )
    return Outcome(
        base.path, KEPT, base.size, base.mtime_ns, base.sha256, base.language, count,
        dumps(record), secrets=tuple(values),
    )  # fmt: skip


HARVEST_MAX_BYTES = 64 * 1024


def _harvest(root: Path, path: str) -> tuple[str, ...]:
    """Secret values inside a file that is a secret by nature (``.env``, ``id_rsa``, ...).

    The file itself never reaches the dataset; its values are remembered so that a copy of
    one elsewhere (a test, a README, a commit) is redacted too. Only small regular files inside
    the workspace are read (no symlinks, no FIFOs).
    """
    full = os.path.join(root, path)
    try:
        st = os.lstat(full)
        if not stat.S_ISREG(st.st_mode) or st.st_size > HARVEST_MAX_BYTES:
            return ()
        with open(full, "rb") as fh:
            data = fh.read(HARVEST_MAX_BYTES)
    except OSError:
        return ()
    if b"\0" in data[:8192]:
        return ()
    text = data.decode("utf-8", "replace")
    return tuple(text[start:end] for start, end, _ in find_secrets(text))


def _content_reason(data: bytes) -> str | None:
    if not data or data.isspace():
        return "empty"
    return filters.binary_filter(data)


def process_many(root: str, paths: list[str], config: DatasetConfig) -> list[Outcome]:
    """Decide a chunk of paths (the unit of work of a build's worker processes)."""
    return [process_file(Path(root), path, config) for path in paths]
