"""Run ``codellama-train`` / ``codellama-eval`` as subprocesses and stream their JSON events.

The language server trains in a child process so that it stays responsive and survives a crash
or an out-of-memory kill of the trainer.  :class:`TrainingJob` starts the child (at lower CPU
priority), parses its one-JSON-object-per-line progress on a reader thread, and cancels it the
gentle way first (the ``CANCEL`` file the trainer polls every step, which leaves a resumable
checkpoint), then with SIGTERM (also a clean cancel), then SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from training.checkpoints import CANCEL_FILE
from training.config import EvalConfig, TrainConfig
from training.options import LspOption, lsp_flags, lsp_table
from training.progress import parse_line

EventFn = Callable[[dict[str, Any]], None]

TRAIN_OPTIONS: dict[str, LspOption] = lsp_table(TrainConfig)
"""camelCase option of ``codellama.finetune`` → its ``codellama-train`` flag (derived)."""

EVAL_OPTIONS: dict[str, LspOption] = lsp_table(EvalConfig)
"""camelCase option of ``codellama.evaluate`` → its ``codellama-eval`` flag (derived)."""


class JobOptionError(ValueError):
    """An option the user passed cannot be used; the message names it."""


def option_flags(options: Mapping[str, Any], table: Mapping[str, LspOption]) -> list[str]:
    """CLI flags for camelCase ``options`` (unknown keys and bad values raise JobOptionError).

    Values are checked against the option's type, limits and choices here, before any child
    process starts; ``None`` leaves an option at its default.
    """
    flags: list[str] = []
    for key, value in options.items():
        if key not in table:
            known = ", ".join(sorted(table))
            raise JobOptionError(f"unknown option {key!r}; known options: {known}")
        if value is None:
            continue
        try:
            flags += lsp_flags(key, value, table[key].option)
        except ValueError as exc:
            raise JobOptionError(str(exc)) from None
    return flags


def train_command(
    *,
    workspace: str | Path,
    base_model: str,
    output: str | Path,
    options: Mapping[str, Any] | None = None,
    dataset: str | Path | None = None,
    served_adapter: str | None = None,
    resume: bool = False,
    python: str | None = None,
) -> list[str]:
    """The ``python -m training.train`` command line for a server-started fine-tune."""
    cmd = [python or sys.executable, "-m", "training.train"]
    cmd += ["--dataset", str(dataset)] if dataset else ["--workspace", str(workspace)]
    cmd += ["--base-model", base_model, "--output", str(output), "--progress", "json"]
    cmd += ["--repo-name", Path(workspace).name]  # as the server's index names it
    if served_adapter:
        cmd += ["--served-adapter", served_adapter]
    if resume:
        cmd.append("--resume")
    return cmd + option_flags(options or {}, TRAIN_OPTIONS)


def _lower_priority() -> None:  # runs in the child before exec
    with contextlib.suppress(OSError):
        os.nice(10)


class TrainingJob:
    """One child process emitting progress events; thread-safe ``cancel``/``wait``."""

    def __init__(
        self,
        cmd: list[str],
        run_dir: str | Path,
        *,
        on_event: EventFn | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        nice: bool = True,
    ) -> None:
        self.cmd = cmd
        self.run_dir = Path(run_dir)
        self.on_event = on_event
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.nice = nice
        self.events: list[dict[str, Any]] = []
        self.last_step: dict[str, Any] | None = None
        self.done_event: dict[str, Any] | None = None
        self.cancel_requested = threading.Event()
        self.started_at: float | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._log: IO[str] | None = None

    @property
    def log_path(self) -> Path:
        """The child's stderr (tracebacks, warnings)."""
        return self.run_dir / "train.log"

    @property
    def running(self) -> bool:
        """True while the child process lives."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit code once finished."""
        return None if self._proc is None else self._proc.poll()

    def start(self) -> TrainingJob:
        """Spawn the child and the reader thread."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("a", encoding="utf-8")
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=self.cwd,
            preexec_fn=_lower_priority if self.nice and os.name == "posix" else None,
        )
        self.started_at = time.monotonic()
        self._reader = threading.Thread(target=self._read, name="training-job-reader", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            event = parse_line(line)
            if event is None:
                continue
            self.events.append(event)
            if self.cancel_requested.is_set():
                # The trainer clears a stale CANCEL file while it starts up, so a cancel asked
                # for before its first event may have been removed: ask again, now it listens.
                self._touch_cancel_file()
            if event.get("event") == "step":
                self.last_step = event
            elif event.get("event") == "done":
                self.done_event = event
            if self.on_event is not None:
                with contextlib.suppress(Exception):  # a UI callback must not kill the reader
                    self.on_event(event)

    def cancel(self, *, grace_s: float = 30.0) -> None:
        """Ask the trainer to stop at its next step; escalate to signals after ``grace_s``."""
        self.cancel_requested.set()
        self._touch_cancel_file()
        if not self.running:
            return

        threading.Thread(target=self._escalate, args=(grace_s,), daemon=True).start()

    def _touch_cancel_file(self) -> None:
        with contextlib.suppress(OSError):
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cancel_file = self.run_dir / CANCEL_FILE
            if not cancel_file.exists():
                cancel_file.touch()

    def _escalate(self, grace_s: float) -> None:
        proc = self._proc
        if proc is None:
            return
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(OSError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                proc.kill()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the child exits; return its ``done`` event (synthesised if it died)."""
        assert self._proc is not None, "start() first"
        self._proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.done_event is not None:
            return self.done_event
        tail = self.log_tail()
        status = "canceled" if self.cancel_requested.is_set() else "failed"
        return {
            "event": "done",
            "status": status,
            "error": f"trainer exited with code {self._proc.returncode}"
            + (f": {tail}" if tail else ""),
            "message": f"training {status} (exit code {self._proc.returncode})",
        }

    def log_tail(self, lines: int = 5) -> str:
        """Last lines of the child's stderr (the reason it failed, usually)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        kept = [ln for ln in text.splitlines() if ln.strip() and "Warning" not in ln]
        return " | ".join(kept[-lines:])


def run_json_command(
    cmd: list[str], *, timeout: float | None = None, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run a CLI that prints one JSON object (``codellama-eval --json``) and return it."""
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        preexec_fn=_lower_priority if os.name == "posix" else None,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                obj = json.loads(line)
                if isinstance(obj, dict):
                    return obj
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
    raise RuntimeError(
        f"{Path(cmd[2] if len(cmd) > 2 else cmd[0]).name} failed ({proc.returncode}): {tail}"
    )
