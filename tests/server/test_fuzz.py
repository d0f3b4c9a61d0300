"""Seeded protocol fuzz of the real server (issue 11, "must show"): a few thousand messages per
run, valid traffic mixed with bad params, invalid JSON-RPC envelopes, batches, framing faults,
edits that hit LSP-only line breaks, out-of-range positions and cancellations.

Asserted for every run (see :mod:`lsp_server.fuzzing`): no crash, no hang, every request with
an id answered (the malformed ones with the expected error code, id-less ones with id null),
every document equal to an independent reference model of the edits, no error or warning
pop-ups, bounded bookkeeping, exit code 0 after ``shutdown`` + ``exit``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import converters
from pytest_lsp import client_capabilities

from lsp_server.fuzzing import run_fuzz

MESSAGES = 2000
"""Per run; two runs (one per client profile) take ≈ 30 s on 2 busy cores with the tiny model."""


@pytest.mark.parametrize(("profile", "seed"), [("visual-studio-code", 11), ("neovim", 12)])
async def test_fuzz(profile: str, seed: int, tiny_model: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    report = await run_fuzz(
        seed=seed,
        messages=MESSAGES,
        profile=profile,
        capabilities=converters.get_converter().unstructure(client_capabilities(profile)),
        configuration={
            "model": str(tiny_model),
            "debounceMs": 0,
            "maxNewTokens": 8,
            "watchDataset": False,
            "logLevel": "warning",
        },
        root=root,
        stderr_path=tmp_path / "server.log",
    )
    print(report.summary())
    assert report.messages >= MESSAGES
    assert report.crashes == 0 and report.hangs == 0, report.summary()
    assert report.unanswered == [], report.unanswered[:10]
    assert report.wrong_codes == [], report.wrong_codes
    assert report.null_id_received == report.null_id_expected, report.summary()
    assert report.diverged == [], report.divergence
    assert report.popups == [], report.popups
    assert 0 <= report.pending_futures <= 16, report.summary()
    assert report.exit_code == 0
    assert report.ok
