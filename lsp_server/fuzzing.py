"""A seeded protocol fuzzer for the real server: valid traffic mixed with malformed input.

Used by ``tests/server/test_fuzz.py`` (a few thousand messages in CI) and ``bench/soak.py``
(≥ 10k messages, RSS over time). One run drives one ``python -m lsp_server`` process through
:class:`~lsp_server.wire.WireClient` and checks, against an independent reference model of the
edits:

- **no crash**: the process is alive until ``shutdown`` + ``exit`` and then exits 0;
- **no hang**: a status probe every ``probe_every`` messages is answered within
  ``hang_seconds``; all requests are answered before the end;
- **every request with an id answered** (exactly once), malformed ones with the expected
  JSON-RPC error code, messages without a usable id with an id-null error;
- **every document equal to the reference** (sha256 of the text and the version, through
  ``codellama.documents``) at every probe and at the end;
- **no pop-ups** (``window/showMessage`` Error/Warning) caused by the bad input.

The messages and the reference model of the documents (deliberately written independently of
:mod:`lsp_server.text`) are :mod:`lsp_server.fuzz_traffic`; this module runs them and judges.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsp_server.fuzz_traffic import ReferenceDocument, Traffic
from lsp_server.wire import WireClient, rss_kb

__all__ = ["FuzzReport", "ReferenceDocument", "run_fuzz"]


@dataclass
class FuzzReport:
    """The outcome of one run (all counts; lists hold the first few examples)."""

    seed: int
    profile: str
    messages: int = 0
    requests: int = 0
    answered: int = 0
    unanswered: list[Any] = field(default_factory=list)
    wrong_codes: list[Any] = field(default_factory=list)
    null_id_expected: int = 0
    null_id_received: int = 0
    crashes: int = 0
    hangs: int = 0
    diverged: list[str] = field(default_factory=list)
    divergence: list[str] = field(default_factory=list)
    """For each diverged document: the reference's and the server's version and length."""
    popups: list[str] = field(default_factory=list)
    exit_code: int | None = None
    rss_kb: list[tuple[int, int]] = field(default_factory=list)
    """``(messages sent, server RSS in KiB)`` samples."""
    pending_futures: int = -1
    seconds: float = 0.0
    codes: Counter[Any] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return (
            not self.unanswered
            and not self.wrong_codes
            and self.null_id_expected == self.null_id_received
            and self.crashes == 0
            and self.hangs == 0
            and not self.diverged
            and not self.popups
            and self.exit_code == 0
        )

    def summary(self) -> str:
        rss = (
            f"{self.rss_kb[0][1] / 1024:.0f} → {self.rss_kb[-1][1] / 1024:.0f} MB"
            if self.rss_kb
            else "?"
        )
        return (
            f"seed {self.seed} {self.profile}: {self.messages} messages ({self.requests} requests) "
            f"in {self.seconds:.1f} s; crashes {self.crashes}, hangs {self.hangs}, "
            f"unanswered {len(self.unanswered)}, wrong codes {len(self.wrong_codes)}, "
            f"id-null errors {self.null_id_received}/{self.null_id_expected}, diverged "
            f"{len(self.diverged)}, pop-ups {len(self.popups)}, RSS {rss}, pending futures "
            f"{self.pending_futures}, exit {self.exit_code}"
        )


async def _probe(run: Traffic, report: FuzzReport, hang_seconds: float) -> None:
    """Check liveness and every document against the reference."""
    client = run.client
    try:
        response = await client.request(
            "workspace/executeCommand",
            {"command": "codellama.documents", "arguments": []},
            timeout=hang_seconds,
        )
    except TimeoutError:
        report.hangs += 1
        return
    state = response.get("result") or {}
    report.pending_futures = int(state.get("pendingFutures", -1))
    served = state.get("documents", {})
    for uri, doc in run.docs.items():
        got = served.get(uri)
        same = got is not None and (got["sha256"], got["version"]) == (doc.sha256(), doc.version)
        if not same and len(report.diverged) < 20 and uri not in report.diverged:
            report.diverged.append(uri)
            report.divergence.append(
                f"{uri}: reference v{doc.version} {len(doc.text)} chars {doc.text[-60:]!r}, "
                f"server {got and (got['version'], got['length'])}"
            )
    for uri in served:
        if uri not in run.docs and uri not in report.diverged:
            report.diverged.append(uri)  # the server holds a document the client closed


async def _wait_ready(client: WireClient, timeout: float) -> None:
    """Poll ``codellama.status`` until the model is ready or failed (or ``timeout`` passed)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        status = await client.request(
            "workspace/executeCommand", {"command": "codellama.status", "arguments": []}
        )
        if ((status.get("result") or {}).get("model") or {}).get("state") in {"ready", "failed"}:
            return
        await asyncio.sleep(0.25)


def _judge_answers(run: Traffic, report: FuzzReport) -> None:
    """Fill ``report`` with what came back: answers and their codes, id-null errors, pop-ups."""
    client = run.client
    report.messages = client.sent
    report.requests = len(run.expected)
    for msg_id, codes in run.expected.items():
        response = client.responses.get(msg_id)
        if response is None:
            report.unanswered.append(msg_id)
            continue
        report.answered += 1
        code = (response.get("error") or {}).get("code")
        report.codes[code] += 1
        if codes is not None and code not in codes and len(report.wrong_codes) < 20:
            report.wrong_codes.append((msg_id, codes, response.get("error")))
    report.null_id_expected = run.null_expected
    report.null_id_received = len(client.null_id_errors)
    report.popups = [
        p["message"] for p in client.popups(1, 2) if "model" not in p["message"].lower()
    ]


async def run_fuzz(
    *,
    seed: int,
    messages: int,
    profile: str,
    capabilities: dict[str, Any],
    configuration: dict[str, Any],
    root: Path,
    window: int = 8,
    probe_every: int = 250,
    hang_seconds: float = 30.0,
    stderr_path: Path | None = None,
    on_probe: Any = None,
    ready_timeout: float = 0.0,
) -> FuzzReport:
    """Drive one server with ``messages`` seeded messages; see the module docstring.

    ``ready_timeout`` > 0: first wait (up to that many seconds) until the model has loaded or
    failed, and take a second RSS sample then, so a soak measures serving, not loading."""
    report = FuzzReport(seed=seed, profile=profile)
    rng = random.Random(seed)
    client = WireClient(configuration=configuration, cwd=root, stderr_path=stderr_path)
    started = time.perf_counter()
    await client.start()
    try:
        result = await client.initialize(capabilities, root_uri=root.as_uri())
        encoding = result["result"]["capabilities"].get("positionEncoding", "utf-16")
        run = Traffic(client, rng, encoding, root)
        report.rss_kb.append((0, rss_kb(client.pid) or 0))
        if ready_timeout > 0:
            await _wait_ready(client, ready_timeout)
            report.rss_kb.append((0, rss_kb(client.pid) or 0))
        next_probe = probe_every
        while run.count < messages:
            run.step()
            outstanding = [i for i in run.expected if i not in client.responses]
            if len(outstanding) >= window:
                waiters = [client.expect(i) for i in outstanding[: len(outstanding) - window // 2]]
                done, _ = await asyncio.wait(waiters, timeout=hang_seconds)
                if len(done) < len(waiters):
                    report.hangs += 1
            await client.drain()
            if run.count >= next_probe:
                next_probe += probe_every
                await _probe(run, report, hang_seconds)
                report.rss_kb.append((run.count, rss_kb(client.pid) or 0))
                if on_probe is not None:
                    on_probe(report, run.count)
            if not client.alive:
                report.crashes += 1
                break
        waiters = [client.expect(i) for i in run.expected]
        if waiters:
            await asyncio.wait(waiters, timeout=hang_seconds)
        await _probe(run, report, hang_seconds)
        report.rss_kb.append((run.count, rss_kb(client.pid) or 0))
        _judge_answers(run, report)
        if not client.alive:
            report.crashes += 1
        else:
            report.exit_code = await client.shutdown_and_exit()
            if report.exit_code is None:
                report.hangs += 1
            elif report.exit_code != 0:
                report.crashes += 1
    finally:
        await client.kill()
        report.seconds = time.perf_counter() - started
    return report
