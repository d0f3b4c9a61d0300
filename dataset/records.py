"""The record schema: one JSON object per line of ``dataset.jsonl``.

File records: ``file_path`` (workspace-relative POSIX), ``content`` (redacted text),
``language``, ``sha256`` (of the file's bytes on disk), ``size`` (bytes on disk), ``mtime``
(seconds since the epoch), ``source`` (``"file"``), ``redactions`` (secrets replaced in
``content``), ``schema_version``. Commit records (``source: "commit"``) also carry ``commit``,
``author_date``, ``message`` and ``files``; their ``content`` is the message plus a size-capped,
filtered and redacted diff, ``file_path`` is ``"commit:<sha>"`` and ``language`` is ``"diff"``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

SCHEMA_VERSION = 1

FILE_FIELDS = ("file_path", "content", "language", "sha256", "size", "mtime", "source",
               "redactions", "schema_version")  # fmt: skip
COMMIT_FIELDS = (*FILE_FIELDS, "commit", "author_date", "message", "files")


def file_record(
    path: str, content: str, language: str, sha256: str, size: int, mtime: float, redactions: int
) -> dict[str, Any]:
    """A ``source: "file"`` record."""
    return {
        "file_path": path,
        "content": content,
        "language": language,
        "sha256": sha256,
        "size": size,
        "mtime": mtime,
        "source": "file",
        "redactions": redactions,
        "schema_version": SCHEMA_VERSION,
    }


def commit_record(
    sha: str, author_date: str, timestamp: float, message: str, content: str,
    files: list[str], redactions: int,
) -> dict[str, Any]:  # fmt: skip
    """A ``source: "commit"`` record (content already filtered and redacted)."""
    raw = content.encode("utf-8", "surrogatepass")
    return {
        "file_path": f"commit:{sha}",
        "content": content,
        "language": "diff",
        "sha256": hashlib.sha256(raw).hexdigest(),
        "size": len(raw),
        "mtime": timestamp,
        "source": "commit",
        "redactions": redactions,
        "schema_version": SCHEMA_VERSION,
        "commit": sha,
        "author_date": author_date,
        "message": message,
        "files": files,
    }


def dumps(record: dict[str, Any]) -> str:
    """One JSONL line (without the newline); non-ASCII kept as UTF-8."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def validate(record: dict[str, Any]) -> None:
    """Raise ``ValueError`` when a record does not follow the schema."""
    fields = COMMIT_FIELDS if record.get("source") == "commit" else FILE_FIELDS
    missing = [f for f in fields if f not in record]
    if missing:
        raise ValueError(f"record {record.get('file_path')!r} lacks {missing}")
    if record["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"schema_version {record['schema_version']} != {SCHEMA_VERSION}")
