"""Fixtures for server tests: tiny Llama models in tmp dirs and real server processes over stdio.

Every end-to-end test talks to ``python -m lsp_server`` through pytest-lsp's client, once per
client profile ("visual-studio-code", "neovim"), so capability differences (position encoding,
progress, configuration) are exercised for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

PROFILES = ["visual-studio-code", "neovim"]

CORPUS = [
    textwrap.dedent(
        '''
        """Geometry helpers."""
        import math


        class Point:
            def __init__(self, x: float, y: float) -> None:
                self.x = x
                self.y = y

            def distance(self, other: "Point") -> float:
                return math.hypot(self.x - other.x, self.y - other.y)


        def mean(values: list[float]) -> float:
            return sum(values) / len(values)


        def fib(n: int) -> int:
            if n < 2:
                return n
            return fib(n - 1) + fib(n - 2)
        '''
    )
] * 4


def build_tiny_model(out: Path, *, endless: bool = False) -> Path:
    """Save a 2-layer random Llama with a small byte-level BPE tokenizer (StarCoder FIM tokens).

    ``endless``: the weights are steered so greedy decoding only ever emits two word tokens
    (never a newline or end token): no stop rule fires, generation runs to ``maxNewTokens``.
    That makes cancellation and supersede timing observable.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<pad>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<pad>",
        additional_special_tokens=specials[2:],
    )
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=not endless,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    if endless:
        word_a, word_b = fast.convert_tokens_to_ids(["self", "x"])
        assert word_a is not None and word_b is not None
        with torch.no_grad():
            model.model.norm.weight.zero_()
            model.model.norm.weight[0] = 1.0
            model.lm_head.weight.zero_()
            model.lm_head.weight[word_a, 0] = 10.0
            model.lm_head.weight[word_b, 0] = -10.0
    model.save_pretrained(out)
    return out


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


StartServer = Callable[..., Awaitable[LanguageClient]]


@pytest_asyncio.fixture
async def start_server(profile: str, tmp_path: Path) -> AsyncIterator[StartServer]:
    """Factory: start ``python -m lsp_server`` and initialize it with given settings."""
    clients: list[LanguageClient] = []

    async def start(
        options: dict[str, Any] | None = None,
        *,
        configuration: dict[str, Any] | None = None,
        wait_before_initialize: float = 0.0,
    ) -> LanguageClient:
        client = make_test_lsp_client()
        if configuration is not None:
            client.set_configuration(configuration, section="codellama")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        await client.start_io(sys.executable, "-m", "lsp_server", env=env)
        clients.append(client)
        if wait_before_initialize:
            await asyncio.sleep(wait_before_initialize)
        started = time.perf_counter()
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities(profile),
                root_uri=tmp_path.as_uri(),
                initialization_options=options or {},
            )
        )
        client.initialize_seconds = time.perf_counter() - started  # type: ignore[attr-defined]
        return client

    yield start
    for client in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 20)
        await client.stop()
