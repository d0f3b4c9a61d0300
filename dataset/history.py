"""Commit records from git history (``--history``): message + a filtered, size-capped diff.

The diff of every file is filtered like a file would be: secret files, vendored/lock/minified/
build paths, ignored paths and binary changes are cut out before anything else happens, then the
message and remaining diff are redacted. Counts of what was cut go to the stats.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path

from dataset import filters
from dataset.config import DatasetConfig
from dataset.process import path_reason
from dataset.records import commit_record, dumps
from dataset.scope import Scope
from dataset.secrets import find_secrets, redact_values

log = logging.getLogger(__name__)

_SEP = "\x1e\x1f"
_FILE_HEADER = re.compile(r"^diff --git a/(.*?) b/(.*)$", re.MULTILINE)


def _sections(diff: str) -> list[tuple[str, str]]:
    """Split a ``git log -p`` diff into ``(path, text)`` per file."""
    starts = [(m.start(), m.group(2)) for m in _FILE_HEADER.finditer(diff)]
    out = []
    for i, (pos, path) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(diff)
        out.append((path.strip('"'), diff[pos:end]))
    return out


def _cap(text: str, limit: int) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text
    cut = raw[:limit].decode("utf-8", "ignore")
    nl = cut.rfind("\n")
    return (cut[: nl + 1] if nl > 0 else cut) + "\n[diff truncated]\n"


def commit_records(
    root: Path, scope: Scope, config: DatasetConfig, counts: Counter[str],
    found: set[str] | None = None,
) -> list[tuple[str, int, str]]:  # fmt: skip
    """``(sha, redactions, record_json)`` for the newest commits, newest first.

    ``found`` collects the secret values redacted (and those inside cut sections of secret
    files such as ``.env``) for ``dataset.known_secrets``.
    """
    import git

    fmt = f"{_SEP}%H%x00%aI%x00%at%x00%B%x00"
    try:
        out = git.Git(str(root)).execute(
            ["git", "-c", "core.quotepath=off", "log", "-p", "--no-color", "--no-ext-diff",
             "--no-renames", f"--max-count={config.history_max_commits}", f"--format={fmt}",
             "--", "."],
            stdout_as_string=False,
        )  # fmt: skip
    except Exception as exc:
        counts["history_unavailable"] += 1
        log.warning("no git history for %s: %s", root, exc)
        return []
    assert isinstance(out, bytes)
    text = out.decode("utf-8", "replace")
    results = []
    for chunk in text.split(_SEP)[1:]:
        parts = chunk.split("\x00", 4)
        if len(parts) < 5:
            continue
        sha, author_date, timestamp, message, diff = parts
        kept_sections = []
        files = []
        for path, section in _sections(diff.lstrip("\n")):
            reason, _ = path_reason(path, config)
            rel = (
                path[len(scope.prefix) :]
                if scope.prefix and path.startswith(scope.prefix)
                else path
            )
            if reason is None and scope.codellama.ignored(rel):
                reason = "ignored"
            if reason is None and ("\nGIT binary patch" in section or "\nBinary files " in section):
                reason = "binary"
            if reason is None and (
                filters.generated_filter(_added(section), config) or _blob(section, config)
            ):
                reason = "encoded_or_generated"
            if reason:
                counts[f"history_section_{reason}"] += 1
                if reason == "secret_file" and found is not None:
                    added = _added(section)
                    found.update(added[a:b] for a, b, _ in find_secrets(added))
                continue
            kept_sections.append(section)
            files.append(path)
        message = message.strip()
        body = _cap("".join(kept_sections), config.history_max_diff_bytes)
        clean_message, n_msg, msg_values = redact_values(message)
        clean_body, n_body, body_values = redact_values(body)
        if found is not None:
            found.update(msg_values, body_values)
        content = clean_message + "\n\n" + clean_body if clean_body else clean_message
        record = commit_record(
            sha, author_date, float(timestamp or 0), clean_message, content, files, n_msg + n_body
        )
        results.append((sha, n_msg + n_body, dumps(record)))
    return results


def _added(section: str) -> str:
    return "\n".join(
        line[1:]
        for line in section.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    )


def _blob(section: str, config: DatasetConfig) -> bool:
    added = _added(section)
    run, _ = filters.encoded_fraction(added, config)
    return run > config.max_encoded_run
