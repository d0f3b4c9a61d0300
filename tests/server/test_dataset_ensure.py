"""``DatasetService.ensure`` (what the fine-tune waits on): one sync at a time, the watcher's
initial sync awaited rather than duplicated, and a watcher that does not catch up reported."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lsp_server import dataset_service
from lsp_server.dataset_service import DatasetService
from lsp_server.settings import Settings


class _Server:
    settings = Settings()
    workspace_root: Path | None = None


class _Watcher:
    def __init__(self, idle: bool) -> None:
        self.idle = idle
        self.waits: list[float] = []

    def wait_idle(self, timeout: float) -> bool:
        self.waits.append(timeout)
        return self.idle


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """Replace ``dataset.api.sync`` with a slow fake recording (start, end) of each call."""
    from dataset import api

    calls: list[tuple[float, float]] = []
    lock = threading.Lock()

    def fake_sync(root: Path, *, out: str | None = None) -> None:
        began = time.monotonic()
        time.sleep(0.2)
        with lock:
            calls.append((began, time.monotonic()))

    monkeypatch.setattr(api, "sync", fake_sync)
    return calls


async def test_a_watcher_that_does_not_catch_up_is_an_error(tmp_path: Path) -> None:
    feature = DatasetService(_Server(), completions=None)  # type: ignore[arg-type]
    feature._watcher = _Watcher(idle=False)
    with pytest.raises(RuntimeError, match="still catching up"):
        await feature.ensure(tmp_path)
    assert feature._watcher.waits == [dataset_service.IDLE_TIMEOUT_S]


async def test_the_initial_sync_is_awaited_not_repeated(
    tmp_path: Path, syncs: list[tuple[float, float]]
) -> None:
    feature = DatasetService(_Server(), completions=None)  # type: ignore[arg-type]
    watcher = _Watcher(idle=True)

    async def start() -> None:  # the watcher's start-up sync, still running
        await asyncio.sleep(0.3)
        feature._watcher = watcher

    feature._starting = asyncio.ensure_future(start())
    assert await feature.ensure(tmp_path) == tmp_path / ".codellama"
    assert syncs == []  # no second sync beside the watcher's
    assert watcher.waits == [dataset_service.IDLE_TIMEOUT_S]


async def test_concurrent_callers_sync_one_at_a_time(
    tmp_path: Path, syncs: list[tuple[float, float]]
) -> None:
    feature = DatasetService(_Server(), completions=None)  # type: ignore[arg-type]
    results: list[Any] = await asyncio.gather(feature.ensure(tmp_path), feature.ensure(tmp_path))
    assert results == [tmp_path / ".codellama"] * 2
    (_, first_end), (second_start, _) = sorted(syncs)
    assert second_start >= first_end
