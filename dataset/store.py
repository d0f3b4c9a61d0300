"""Storage: a SQLite catalogue (the committed truth) and the ``dataset.jsonl`` export.

The catalogue (``catalogue.sqlite``, WAL journal) maps each path to its stat data, sha256,
decision and record; one change is one small transaction, so its cost does not grow with the
workspace. "Committed" means that transaction committed: SQLite's journal makes it atomic, and a
process killed at any moment leaves either the old or the new state. ``dataset.jsonl`` is an
export of one committed state, taken inside a read transaction and published with write-to-temp,
fsync, ``os.replace``, so a reader sees either the previous export or the next one, whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from dataset.process import KEPT, Outcome
from dataset.records import SCHEMA_VERSION

CATALOGUE = "catalogue.sqlite"
DATASET = "dataset.jsonl"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, status TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT, language TEXT, redactions INTEGER NOT NULL, record TEXT, detail TEXT
);
CREATE TABLE IF NOT EXISTS commits (
    sha TEXT PRIMARY KEY, position INTEGER NOT NULL, redactions INTEGER NOT NULL, record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS skipped (path TEXT PRIMARY KEY, reason TEXT NOT NULL, detail TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def ensure_state_dir(state: Path) -> None:
    """Create the state dir with a ``.gitignore`` of ``*`` (git then ignores all of it)."""
    state.mkdir(parents=True, exist_ok=True)
    marker = state / ".gitignore"
    if not marker.exists():
        marker.write_text("# codellama-lsp state: never commit\n*\n", encoding="utf-8")


class Catalogue:
    """The per-workspace catalogue; one instance per thread (sqlite connections are not shared)."""

    def __init__(self, state: Path, *, readonly: bool = False) -> None:
        self.state = state
        self.path = state / CATALOGUE
        if readonly and not self.path.exists():
            raise FileNotFoundError(
                f"no dataset catalogue at {self.path}: run `codellama-dataset build`"
            )
        self.db = sqlite3.connect(
            self.path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit is atomic and survives a killed process; after a power cut the last
        # transactions may roll back, but the catalogue stays consistent.
        self.db.execute("PRAGMA synchronous=NORMAL")
        if not readonly:
            self.db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; commits (and bumps ``generation``) only if the block succeeds."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            self.db.execute(
                "INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) "
                "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same committed state."""
        self.db.execute("BEGIN")
        try:
            yield self.db
        finally:
            self.db.execute("COMMIT")

    # -- files ---------------------------------------------------------------------------
    def outcomes(self, prefix: str = "", *, records: bool = False) -> dict[str, Outcome]:
        """Catalogued outcomes, optionally only under a directory prefix (``"a/b/"``).

        Without ``records`` the record text is left out (``None``): reconciling needs only the
        stat data and hashes, and loading every record would hold the whole dataset in memory.
        """
        column = "record" if records else "NULL"
        sql = f"SELECT path, status, size, mtime_ns, sha256, language, redactions, {column}, detail FROM files"
        rows = (
            self.db.execute(sql + " WHERE path >= ? AND path < ?", (prefix, prefix + "\U0010ffff"))
            if prefix
            else self.db.execute(sql)
        )
        return {r[0]: Outcome(*r) for r in rows}

    def get(self, path: str) -> Outcome | None:
        """One catalogued outcome."""
        row = self.db.execute(
            "SELECT path, status, size, mtime_ns, sha256, language, redactions, record, detail "
            "FROM files WHERE path = ?",
            (path,),
        ).fetchone()
        return Outcome(*row) if row else None

    @staticmethod
    def upsert(db: sqlite3.Connection, outcomes: Iterable[Outcome]) -> None:
        """Insert or replace outcomes (inside a transaction)."""
        db.executemany(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (o.path, o.status, o.size, o.mtime_ns, o.sha256, o.language, o.redactions,
                 o.record, o.detail[:500])
                for o in outcomes
            ),
        )  # fmt: skip

    @staticmethod
    def delete(db: sqlite3.Connection, paths: Iterable[str]) -> None:
        """Forget paths (inside a transaction)."""
        db.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in paths))

    @staticmethod
    def set_meta(db: sqlite3.Connection, values: dict[str, Any]) -> None:
        """Store JSON-encoded metadata (inside a transaction)."""
        db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            ((k, json.dumps(v)) for k, v in values.items()),
        )

    def meta(self) -> dict[str, Any]:
        """All metadata, decoded."""
        out: dict[str, Any] = {}
        for key, value in self.db.execute("SELECT key, value FROM meta"):
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
        return out

    @staticmethod
    def replace_skipped(
        db: sqlite3.Connection, skipped: list[tuple[str, str, str]], prefix: str = ""
    ) -> None:
        """Replace listing-time skips (under ``prefix``) with a new set."""
        if prefix:
            db.execute(
                "DELETE FROM skipped WHERE path >= ? AND path < ?", (prefix, prefix + "\U0010ffff")
            )
        else:
            db.execute("DELETE FROM skipped")
        db.executemany("INSERT OR REPLACE INTO skipped VALUES (?, ?, ?)", skipped)

    @staticmethod
    def replace_commits(db: sqlite3.Connection, commits: list[tuple[str, int, str]]) -> None:
        """Replace the commit records: ``(sha, redactions, record_json)`` newest first."""
        db.execute("DELETE FROM commits")
        db.executemany(
            "INSERT INTO commits VALUES (?, ?, ?, ?)",
            ((sha, i, red, rec) for i, (sha, red, rec) in enumerate(commits)),
        )

    # -- reading -------------------------------------------------------------------------
    def record_lines(self, db: sqlite3.Connection | None = None) -> Iterator[str]:
        """Every record as a JSON line: kept files by path, then commits newest first."""
        db = db or self.db
        for (line,) in db.execute(
            "SELECT record FROM files WHERE status = ? ORDER BY path", (KEPT,)
        ):
            yield line
        for (line,) in db.execute("SELECT record FROM commits ORDER BY position"):
            yield line

    def stats(self) -> dict[str, Any]:
        """Kept/dropped counts by reason, languages, sizes, redactions (one consistent read)."""
        with self.snapshot() as db:
            by_status = {
                s: (n, b or 0)
                for s, n, b in db.execute(
                    "SELECT status, COUNT(*), SUM(size) FROM files GROUP BY status"
                )
            }
            languages = {
                lang: {"files": n, "bytes": b}
                for lang, n, b in db.execute(
                    "SELECT language, COUNT(*), SUM(size) FROM files WHERE status = ? "
                    "GROUP BY language ORDER BY SUM(size) DESC",
                    (KEPT,),
                )
            }
            chars, redactions = db.execute(
                "SELECT COALESCE(SUM(LENGTH(json_extract(record, '$.content'))), 0), "
                "COALESCE(SUM(redactions), 0) FROM files WHERE status = ?",
                (KEPT,),
            ).fetchone()
            commits, commit_redactions, commit_chars = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(redactions), 0), "
                "COALESCE(SUM(LENGTH(json_extract(record, '$.content'))), 0) FROM commits"
            ).fetchone()
            skipped: dict[str, int] = {}
            for reason, n in db.execute("SELECT reason, COUNT(*) FROM skipped GROUP BY reason"):
                skipped[reason] = n
            meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
        kept_files, kept_bytes = by_status.pop(KEPT, (0, 0))
        return {
            "schema_version": SCHEMA_VERSION,
            "generation": meta.get("generation", 0),
            "mode": meta.get("mode"),
            "notes": meta.get("notes", []),
            "files_seen": kept_files + sum(n for n, _ in by_status.values()),
            "kept": kept_files,
            "kept_bytes": kept_bytes,
            "dropped": dict(
                sorted(((s, n) for s, (n, _) in by_status.items()), key=lambda x: -x[1])
            ),
            "skipped": skipped,
            "languages": languages,
            "redactions": redactions + commit_redactions,
            "commit_records": commits,
            # ~4 characters per token for source code with BPE vocabularies.
            "token_estimate": (chars + commit_chars) // 4,
            "built_at": meta.get("built_at"),
        }


_export_lock = threading.Lock()


def export(catalogue: Catalogue, dataset: Path) -> tuple[int, float]:
    """Write one committed state to ``dataset`` atomically; returns (records, seconds).

    Rows are fetched as ``bytes`` and written to a binary file: no UTF-8 decode/encode, so the
    export barely holds the GIL and does not slow the watcher's commits in the same process.
    """
    start = time.perf_counter()
    tmp = dataset.with_name(f".{dataset.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    count = 0
    db = catalogue.db
    with _export_lock:
        _remove_stale_temps(dataset)
        factory = db.text_factory
        db.text_factory = bytes
        try:
            with open(tmp, "wb") as fh, catalogue.snapshot() as snap:
                for sql, args in _EXPORT_QUERIES:
                    cursor = snap.execute(sql, args)
                    while rows := cursor.fetchmany(512):
                        count += len(rows)
                        fh.write(b"\n".join(r[0] for r in rows) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, dataset)
        finally:
            db.text_factory = factory
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        _fsync_dir(dataset.parent)
    return count, time.perf_counter() - start


_EXPORT_QUERIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SELECT record FROM files WHERE status = ? ORDER BY path", (KEPT,)),
    ("SELECT record FROM commits ORDER BY position", ()),
)


def _remove_stale_temps(dataset: Path) -> None:
    """Delete temp exports left by a killed process (their pid no longer runs)."""
    for tmp in dataset.parent.glob(f".{dataset.name}.*.tmp"):
        try:
            pid = int(tmp.name.split(".")[-3])
            os.kill(pid, 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                tmp.unlink()
        except (ValueError, IndexError, PermissionError):
            continue


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Parse a ``dataset.jsonl`` file (raises ``ValueError`` on a malformed line)."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as exc:
                    raise ValueError(f"{path}:{n}: not a JSON record ({exc})") from exc
    return out
