"""Fixtures for refactor tests: tiny Llama models with a chat template, built in tmp dirs, and
real server processes driven by pytest-lsp."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsp_harness import ServerProcesses, StartServer
from lsprotocol import types
from pytest_lsp import LanguageClient, make_test_lsp_client

from model_runtime.tiny import END_OF_TEXT, build_tiny_llama, train_bpe_tokenizer

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
    specials = [END_OF_TEXT, "<|im_start|>", "<|im_end|>", "<pad>"]
    tokenizer = train_bpe_tokenizer(
        CORPUS,
        specials=specials,
        eos="<|im_end|>",
        pad="<pad>",
        extra_specials=specials[1:3],
        chat_template=CHATML,
    )
    return build_tiny_llama(out, tokenizer=tokenizer, endless=() if forced is None else (forced,))


@pytest.fixture(scope="session")
def broken_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model that only ever writes ``(`` — every refactor it produces must be refused."""
    return build_chat_model(tmp_path_factory.mktemp("broken") / "model", forced="(")


@pytest.fixture(scope="session")
def other_chat_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second such model, e.g. as ``refactorModel`` beside ``broken_model``."""
    return build_chat_model(tmp_path_factory.mktemp("other") / "model", forced="(")


PROFILES = ["visual-studio-code", "neovim"]


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    """The client profile whose capabilities the test client announces."""
    return str(request.param)


@pytest_asyncio.fixture
async def start_server(tmp_path: Path) -> AsyncIterator[StartServer]:
    """Factory: start ``python -m lsp_server`` (real process, stdio) for a client ``profile``."""
    servers = ServerProcesses(tmp_path)

    async def start(profile: str, options: dict[str, Any]) -> LanguageClient:
        client = make_test_lsp_client()
        client.applied_edits = []  # type: ignore[attr-defined]

        @client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            client.applied_edits.append(params.edit)  # type: ignore[attr-defined]
            return types.ApplyWorkspaceEditResult(applied=True)

        return await servers.start(profile, options, configuration=options, client=client)

    yield start
    await servers.stop_all()
