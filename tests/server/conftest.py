"""Fixtures for server tests: tiny Llama models in tmp dirs and real server processes over stdio.

Every end-to-end test talks to ``python -m lsp_server`` through pytest-lsp's client, once per
client profile ("visual-studio-code", "neovim"), so capability differences (position encoding,
progress, configuration) are exercised for real.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from lsp_harness import ServerProcesses, StartServer
from server_helpers import CORPUS

from model_runtime.tiny import END_OF_TEXT, STARCODER_FIM, build_tiny_llama, train_bpe_tokenizer

PROFILES = ["visual-studio-code", "neovim"]


def build_tiny_model(out: Path, *, endless: bool = False) -> Path:
    """Save a 2-layer random Llama with a small byte-level BPE tokenizer (StarCoder FIM tokens).

    ``endless``: the weights are steered so greedy decoding only ever emits two word tokens
    (never a newline or end token): no stop rule fires, generation runs to ``maxNewTokens``.
    That makes cancellation and supersede timing observable.
    """
    tokenizer = train_bpe_tokenizer(
        CORPUS, specials=[END_OF_TEXT, "<pad>", *STARCODER_FIM], pad="<pad>"
    )
    return build_tiny_llama(
        out, tokenizer=tokenizer, max_positions=8192, endless=("self", "x") if endless else ()
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama (fast completions of arbitrary text)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def endless_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama that never stops on its own (for cancellation tests)."""
    return build_tiny_model(tmp_path_factory.mktemp("endless") / "model", endless=True)


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """The client profile whose capabilities the test client announces."""
    return str(request.param)


@pytest_asyncio.fixture
async def start_server(profile: str, tmp_path: Path) -> AsyncIterator[StartServer]:
    """Factory: start ``python -m lsp_server`` and initialize it with given settings.

    ``start(options=None, *, configuration=None, wait_before_initialize=0.0)``: see
    :meth:`lsp_harness.ServerProcesses.start` (the profile is this fixture's).
    """
    servers = ServerProcesses(tmp_path)
    yield functools.partial(servers.start, profile)
    await servers.stop_all()
