"""Dataset configuration: every threshold a filter uses, with its default and reason."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class DatasetConfig:
    """Settings of the dataset builder; the defaults follow StarCoder2 / The Stack v2."""

    max_file_bytes: int = 512 * 1024
    """Files larger than this are dropped unread (``too_large``)."""

    max_avg_line_length: float = 100.0
    """Average line length above this marks data or minified code (``avg_line_length``)."""

    max_line_length: int = 1000
    """Longest line above this is dropped, except for data/markup languages (``max_line_length``)."""

    min_alpha_fraction: float = 0.25
    """Fewer alphabetic characters than this fraction marks data tables (``alpha_fraction``)."""

    max_encoded_run: int = 1024
    """A base64/hex/unicode-escape run longer than this is an embedded blob (``encoded_blob``)."""

    max_encoded_fraction: float = 0.5
    """Encoded runs covering more than this fraction of the file (``encoded_blob``)."""

    generated_marker_lines: int = 5
    """How many leading lines are searched for auto-generation markers (``generated``)."""

    languages: frozenset[str] | None = None
    """Allow-list of language names (see ``dataset.languages``); ``None`` keeps every known one."""

    history_max_commits: int = 500
    """With ``history=True``: how many commits (newest first) become commit records."""

    history_max_diff_bytes: int = 64 * 1024
    """Diff text of one commit record is cut to this many bytes (at a line boundary)."""

    debounce_s: float = 0.15
    """Watcher: quiet period after the last event before a batch is committed."""

    export_interval_s: float = 1.0
    """Watcher: minimum time between two re-exports of ``dataset.jsonl``."""

    workers: int = 0
    """Processes for full builds of 256+ files: 0 = one per CPU (at most 4), 1 = in-process."""

    extra_ignores: tuple[str, ...] = field(default_factory=tuple)
    """Extra gitignore-style patterns, applied like ``.codellamaignore`` at the workspace root."""

    def fingerprint(self) -> str:
        """A digest of the settings that change records, so a catalogue built with others is redone."""
        data = asdict(self)
        for key in ("debounce_s", "export_interval_s", "history_max_commits", "workers"):
            data.pop(key)
        data["languages"] = sorted(self.languages) if self.languages is not None else None
        blob = json.dumps(data, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
