"""Fixtures for refactor tests: tiny Llama models with a chat template, built in tmp dirs, and
real server processes driven by pytest-lsp."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities, make_test_lsp_client

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CORPUS = [
    textwrap.dedent(
        '''
        def area(width, height):
            """Return the area of a rectangle."""
            if width < 0 or height < 0:
                raise ValueError("negative size")
            return width * height

        You are an expert Python programmer. Write a one-sentence docstring. ```python
        '''
    )
] * 4


def build_chat_model(out: Path, *, forced: str | None = None) -> Path:
    """Save a 2-layer random Llama whose tokenizer has a ChatML chat template.

    ``forced``: steer the weights so greedy decoding emits only this token, forever — a model
    that can only produce invalid code and never stops on its own.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
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
        eos_token="<|im_end|>",
        pad_token="<pad>",
        additional_special_tokens=specials[1:3],
    )
    fast.chat_template = CHATML
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
        max_position_embeddings=4096,
        tie_word_embeddings=forced is None,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    if forced is not None:
        token = fast.convert_tokens_to_ids(forced)
        assert token != fast.unk_token_id, forced
        with torch.no_grad():
            model.model.norm.weight.zero_()
            model.model.norm.weight[0] = 1.0
            model.lm_head.weight.zero_()
            model.lm_head.weight[token, 0] = 10.0
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def broken_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model that only ever writes ``(`` — every refactor it produces must be refused."""
    return build_chat_model(tmp_path_factory.mktemp("broken") / "model", forced="(")


PROFILES = ["visual-studio-code", "neovim"]


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """The client profile whose capabilities the test client announces."""
    return str(request.param)


@pytest_asyncio.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[LanguageClient]]]:
    """Factory: start ``python -m lsp_server`` (real process, stdio) for a client ``profile``."""
    clients: list[LanguageClient] = []

    async def start(profile: str, options: dict[str, Any]) -> LanguageClient:
        client = make_test_lsp_client()
        client.applied_edits = []  # type: ignore[attr-defined]

        @client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            client.applied_edits.append(params.edit)  # type: ignore[attr-defined]
            return types.ApplyWorkspaceEditResult(applied=True)

        client.set_configuration(options, section="codellama")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        await client.start_io(sys.executable, "-m", "lsp_server", env=env)
        clients.append(client)
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities(profile),
                root_uri=tmp_path.as_uri(),
                initialization_options=options,
            )
        )
        return client

    yield start
    for client in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 20)
        await client.stop()
