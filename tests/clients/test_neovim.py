"""The Neovim client in a real headless Neovim 0.11 against the real server (clients/neovim/tests).

Each test runs ``clients/neovim/tests/run.py``: a driver Neovim types into an embedded Neovim
with the plugin loaded; the plugin talks to ``python -m lsp_server`` over stdio. The runner's
own summary (``N passed, N failed``) is part of the assertion message on failure.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUNNER = REPO / "clients" / "neovim" / "tests" / "run.py"

_spec = importlib.util.spec_from_file_location("codellama_nvim_run", RUNNER)
assert _spec and _spec.loader
_run_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_run_module)
find_nvim = _run_module.find_nvim


def _nvim_or_skip() -> str:
    try:
        return find_nvim()
    except SystemExit as exc:  # the runner explains how to install Neovim
        pytest.skip(str(exc))


def _run(*args: str, timeout: float) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, str(RUNNER), "--nvim", _nvim_or_skip(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _summary(output: str) -> tuple[int, int]:
    m = re.search(r"^(\d+) passed, (\d+) failed$", output, re.MULTILINE)
    assert m, f"the runner printed no summary:\n{output}"
    return int(m.group(1)), int(m.group(2))


@pytest.mark.timeout(900)
def test_neovim_client_with_tiny_model() -> None:
    code, out = _run(timeout=880)
    passed, failed = _summary(out)
    assert code == 0 and failed == 0 and passed > 0, out


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_neovim_client_with_bundled_model() -> None:
    code, out = _run("--model", "bundled:smollm2-135m", timeout=1780)
    passed, failed = _summary(out)
    assert code == 0 and failed == 0 and passed > 0, out
