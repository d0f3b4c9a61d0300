"""Workspace-wide known secrets: a value identified once is redacted wherever else it appears.

Every detector hit (in a kept file, a commit record, or a file that is a secret by nature such
as ``.env``) adds its value to the catalogue's :class:`~dataset.secrets.KnownSecrets`. Inside
the same transaction that writes new records:

1. every record about to be written is searched for every known value;
2. when values were new, the records *already* in the catalogue are searched for them (SQL
   ``instr`` on the JSON line) and rewritten, so a secret found today is also removed from a
   file or commit written yesterday — the watcher's case;
3. the new values' fingerprints (salted PBKDF2 digest, length, 4-character anchor) are stored
   in the ``known_secrets`` table. The values themselves never reach the disk.

The set only grows for the life of a catalogue (a value stays known after the file that held
it is fixed); deleting the state dir resets it. ``SECRETS_VERSION`` in the metadata forces a
full rebuild when the detectors change, so the set is never missing values of old records.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable

from dataset.process import KEPT, Outcome
from dataset.secrets import KnownSecrets, escape_json

SECRETS_VERSION = 2
"""Bumped when the detectors change: a catalogue built before is rebuilt in full."""

_TABLE = """
CREATE TABLE IF NOT EXISTS known_secrets (
    digest TEXT PRIMARY KEY, length INTEGER NOT NULL, anchor TEXT NOT NULL,
    anchor_offset INTEGER NOT NULL
)
"""
CommitRow = tuple[str, int, str]


def load(db: sqlite3.Connection) -> KnownSecrets:
    """The catalogue's known secrets (creates the table and the salt on first use)."""
    db.execute(_TABLE)
    row = db.execute("SELECT value FROM meta WHERE key = 'secret_salt'").fetchone()
    if row is None:
        salt = os.urandom(16)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('secret_salt', ?)", (f'"{salt.hex()}"',))
    else:
        salt = bytes.fromhex(str(row[0]).strip('"'))
    known = KnownSecrets(salt)
    known.load(db.execute("SELECT digest, length, anchor, anchor_offset FROM known_secrets"))
    return known


def propagate(
    db: sqlite3.Connection,
    outcomes: list[Outcome],
    commits: list[CommitRow] | None,
    extra_values: Iterable[str] = (),
) -> tuple[list[Outcome], list[CommitRow] | None, list[str]]:
    """Apply known secrets to records about to be written and to stored ones (in a transaction).

    ``outcomes`` and ``commits`` are what the caller will write; ``commits=None`` means the
    stored commit records stay. Returns the rewritten outcomes and commits, and the paths of
    stored file records that were re-redacted in place.
    """
    known = load(db)
    new: list[str] = []
    for value in [*extra_values, *(v for o in outcomes for v in o.secrets)]:
        if known.add(value):
            new.append(value)
    db.execute("INSERT OR REPLACE INTO meta VALUES ('secrets_version', ?)", (str(SECRETS_VERSION),))
    if not len(known):
        return outcomes, commits, []
    kept = [i for i, o in enumerate(outcomes) if o.status == KEPT and o.record is not None]
    lines = [outcomes[i].record or "" for i in kept] + [c[2] for c in commits or []]
    hits = known.scan(lines)
    if hits:
        outcomes = list(outcomes)
        commits = list(commits) if commits is not None else None
        for index, values in hits.items():
            line, count = known.redact_record(lines[index], values)
            if index < len(kept):
                o = outcomes[kept[index]]
                outcomes[kept[index]] = o._replace(record=line, redactions=o.redactions + count)
            elif commits is not None:
                sha, redactions, _ = commits[index - len(kept)]
                commits[index - len(kept)] = (sha, redactions + count, line)
    rewritten = _rewrite_stored(db, known, new, {o.path for o in outcomes}, commits is None)
    db.executemany("INSERT OR IGNORE INTO known_secrets VALUES (?, ?, ?, ?)", known.rows())
    return outcomes, commits, rewritten


def _rewrite_stored(
    db: sqlite3.Connection,
    known: KnownSecrets,
    new: list[str],
    skip: set[str],
    commits_too: bool,
) -> list[str]:
    """Re-redact stored records that contain a newly known value; returns rewritten paths."""
    rewritten: list[str] = []
    for value in new:
        escaped = escape_json(value)
        rows = db.execute(
            "SELECT path, redactions, record FROM files WHERE status = ? AND instr(record, ?) > 0",
            (KEPT, escaped),
        ).fetchall()
        for path, redactions, record in rows:
            if path in skip:
                continue
            line, count = known.redact_record(record, [escaped])
            if line != record:
                db.execute(
                    "UPDATE files SET record = ?, redactions = ? WHERE path = ?",
                    (line, redactions + count, path),
                )
                rewritten.append(path)
        if commits_too:
            for sha, redactions, record in db.execute(
                "SELECT sha, redactions, record FROM commits WHERE instr(record, ?) > 0", (escaped,)
            ).fetchall():
                line, count = known.redact_record(record, [escaped])
                if line != record:
                    db.execute(
                        "UPDATE commits SET record = ?, redactions = ? WHERE sha = ?",
                        (line, redactions + count, sha),
                    )
    return rewritten
