"""Training progress as one JSON object per line, and the readers of that stream.

The trainer emits ``{"event": "step", "step", "total", "loss", "tokens_per_s", "eta_s", ...}``
once per optimizer step (plus ``start``, ``checkpoint``, ``eval`` and ``done`` events).  The same
lines go to ``<run>/progress.jsonl``, to stdout with ``--progress json`` (the language server
reads them from its training subprocess), or into a terminal progress bar.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any

PROGRESS_FILE = "progress.jsonl"


def parse_line(line: str) -> dict[str, Any] | None:
    """The event in one output line, or ``None`` for anything that is not a progress event."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and isinstance(obj.get("event"), str) else None


def percent(event: dict[str, Any]) -> int:
    """Whole-number completion percentage of a step event (0 when unknown).

    ``percent`` (emitted by the trainer) also accounts for a ``--max-minutes`` budget.
    """
    if isinstance(event.get("percent"), (int, float)):
        return int(event["percent"])
    total = event.get("total") or 0
    return int(100 * event.get("step", 0) / total) if total else 0


def step_label(event: dict[str, Any]) -> str:
    """``step 29/60``; or, when a time budget ends the run first (``time_bound``),
    ``step 29 · 48 % of the 15-min budget``: the step count is then not the denominator."""
    step = event.get("step", 0)
    budget = event.get("budget_s")
    if event.get("time_bound") and isinstance(budget, (int, float)) and budget > 0:
        return f"step {step} · {percent(event)} % of the {budget / 60:g}-min budget"
    return f"step {step}/{event.get('total')}"


def format_eta(seconds: float | None) -> str:
    """``1h02m``, ``3m05s`` or ``12s``."""
    if seconds is None or seconds < 0:
        return "?"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All events of a ``progress.jsonl`` file (missing file: empty list)."""
    p = Path(path)
    if not p.is_file():
        return []
    events = []
    for line in p.read_text(encoding="utf-8").splitlines():
        ev = parse_line(line)
        if ev is not None:
            events.append(ev)
    return events


class ProgressBar:
    """Renders step events as a tqdm bar on stderr (what ``codellama-train`` shows by default)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stderr
        self._bar: Any = None

    def __call__(self, event: dict[str, Any]) -> None:
        from tqdm import tqdm

        kind = event.get("event")
        if kind == "step":
            time_bound = bool(event.get("time_bound"))
            if self._bar is None:
                self._bar = tqdm(total=event.get("total"), file=self._stream, unit="step")
            if time_bound:  # the budget ends the run first: the bar shows its share, in %
                self._bar.total, self._bar.unit = 100, "%"
            self._bar.n = percent(event) if time_bound else int(event.get("step", 0))
            self._bar.set_postfix_str(
                f"{step_label(event)} loss {event.get('loss', 0):.3f} {event.get('tokens_per_s', 0):.0f} tok/s "
                f"eta {format_eta(event.get('eta_s'))}",
                refresh=True,
            )
        elif kind in {"done", "message"}:
            self.close()
            print(event.get("message", ""), file=self._stream)

    def close(self) -> None:
        """Finish the bar."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class ProgressWriter:
    """Sends each event to ``progress.jsonl``, optional stdout JSON lines and an optional sink."""

    def __init__(
        self,
        run_dir: str | Path | None,
        *,
        json_stream: IO[str] | None = None,
        sink: Any = None,
        enabled: bool = True,
    ) -> None:
        self._file = Path(run_dir) / PROGRESS_FILE if run_dir is not None else None
        self._json = json_stream
        self._sink = sink
        self.enabled = enabled

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        """Write one event (no-op on non-main processes)."""
        obj = {"event": event, "time": round(time.time(), 3), **fields}
        if not self.enabled:
            return obj
        line = json.dumps(obj, sort_keys=False)
        if self._file is not None:
            with self._file.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
        if self._json is not None:
            self._json.write(line + "\n")
            self._json.flush()
        if self._sink is not None:
            self._sink(obj)
        return obj
