"""Fixtures for the model runtime tests: a CodeLlama-style SentencePiece tokenizer trained in
the test session, and tiny random Llama models built from it (no hub, no downloads)."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from model_runtime.tiny import TinyLlamaOptions, build_tiny_llama, tiny_llama

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TINY: TinyLlamaOptions = {"hidden_size": 48, "tie_word_embeddings": False}
"""Small enough to run hundreds of decoding steps per second on CPU."""

CODELLAMA_SPECIALS = ["▁<PRE>", "▁<MID>", "▁<SUF>", "▁<EOT>"]
_WORDS = [
    "def",
    "return",
    "import",
    "class",
    "self",
    "if",
    "else",
    "elif",
    "for",
    "while",
    "in",
    "not",
    "and",
    "or",
    "None",
    "True",
    "False",
    "print",
    "value",
    "result",
    "items",
    "range",
    "len",
    "append",
    "dict",
    "list",
    "str",
    "int",
    "foo",
    "bar",
    "baz",
    "x",
    "y",
    "z",
    "i",
    "n",
    "total",
    "count",
]


def _corpus(path: Path) -> None:
    rng = random.Random(0)
    lines = []
    for number in range(3000):
        indent = " " * rng.choice([0, 4, 8])
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 9)))
        tail = rng.choice(["(a, b):", " = [1, 2]", "()", ": # café über", " += 1", "{}", ""])
        lines.append(f"{indent}{words}{tail} {number}")
    path.write_text("\n".join(lines), encoding="utf-8")


def train_spm(directory: Path, *, fim: bool) -> Path:
    """Train a tiny Llama-style SentencePiece BPE model (byte fallback, dummy prefix)."""
    import sentencepiece as spm

    directory.mkdir(parents=True, exist_ok=True)
    corpus = directory / "corpus.txt"
    _corpus(corpus)
    prefix = directory / ("fim" if fim else "plain")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=480,
        model_type="bpe",
        character_coverage=1.0,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        # "☺" is one piece (as in Llama's vocabulary): Meta's encode_infilling relies on it.
        user_defined_symbols=["☺"],
        control_symbols=CODELLAMA_SPECIALS if fim else [],
        bos_id=1,
        eos_id=2,
        unk_id=0,
        pad_id=-1,
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


def hf_tokenizer_from_spm(model_file: Path, *, codellama: bool) -> Any:
    """An HF (tokenizers-backed) Llama/CodeLlama tokenizer with the spm model's vocabulary.

    (``CodeLlamaTokenizer(vocab_file=...)`` silently builds an empty tokenizer in transformers
    5, and converting from the .model file needs protobuf; vocab + merges work offline.)
    """
    import sentencepiece as spm
    from transformers import CodeLlamaTokenizer, LlamaTokenizer
    from transformers.tokenization_utils_base import generate_merges

    processor = spm.SentencePieceProcessor(model_file=str(model_file))
    vocab = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
    cls = CodeLlamaTokenizer if codellama else LlamaTokenizer
    kwargs: dict[str, Any] = {}
    if not codellama:
        kwargs["add_prefix_space"] = True
    tokenizer = cls(
        vocab=vocab,
        merges=generate_merges(vocab),
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        **kwargs,
    )
    assert len(tokenizer) >= processor.get_piece_size()
    return tokenizer


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Any:
    """Run each runtime test on one torch thread, then restore the setting.

    Tiny matrices cost less than thread hand-offs, and on a shared 2-core machine two OpenMP
    threads made even the 135M bundled model 5-10x slower (spin-waits under contention).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def spm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spm")


@pytest.fixture(scope="session")
def codellama_spm(spm_dir: Path) -> Path:
    return train_spm(spm_dir, fim=True)


@pytest.fixture(scope="session")
def plain_spm(spm_dir: Path) -> Path:
    return train_spm(spm_dir, fim=False)


@pytest.fixture(scope="session")
def codellama_tokenizer(codellama_spm: Path) -> Any:
    return hf_tokenizer_from_spm(codellama_spm, codellama=True)


@pytest.fixture()
def plain_tokenizer(plain_spm: Path) -> Any:
    """A fresh Llama tokenizer without FIM tokens (tests may add tokens to it)."""
    return hf_tokenizer_from_spm(plain_spm, codellama=False)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, codellama_tokenizer: Any) -> Path:
    """A saved tiny CodeLlama-style checkpoint (model + tokenizer), loadable by path."""
    return build_tiny_llama(
        tmp_path_factory.mktemp("tiny-codellama"), tokenizer=codellama_tokenizer, **TINY
    )


@pytest.fixture()
def loaded_factory(codellama_tokenizer: Any) -> Callable[..., Any]:
    """Build a LoadedModel around a fresh tiny model without going through files."""
    from model_runtime.loader import LoadedModel
    from model_runtime.tiny import in_memory

    def make(seed: int = 0) -> LoadedModel:
        return in_memory(tiny_llama(codellama_tokenizer, seed=seed, **TINY), codellama_tokenizer)

    return make
