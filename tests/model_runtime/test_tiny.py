"""The tiny-model builder (model_runtime.tiny): steering, saved files, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from model_runtime.tiny import (
    END_OF_TEXT,
    STARCODER_FIM,
    build_tiny_llama,
    tiny_llama,
    train_bpe_tokenizer,
)

CORPUS = ["def area(self, width, height):\n    return self.value * width * height\n"] * 8


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return train_bpe_tokenizer(CORPUS, specials=[END_OF_TEXT, "<pad>", *STARCODER_FIM], pad="<pad>")


def test_tokenizer_roles_and_ids(tokenizer: Any) -> None:
    vocab = tokenizer.get_vocab()
    assert [vocab[t] for t in (END_OF_TEXT, "<pad>", *STARCODER_FIM)] == [0, 1, 2, 3, 4]
    assert tokenizer.eos_token == tokenizer.bos_token == END_OF_TEXT
    assert set(STARCODER_FIM) <= set(tokenizer.all_special_tokens)


def test_endless_model_only_emits_the_steered_tokens(tokenizer: Any) -> None:
    import torch

    model = tiny_llama(tokenizer, endless=("self", "value"))
    assert not model.config.tie_word_embeddings and not model.training
    steered = set(tokenizer.convert_tokens_to_ids(["self", "value"]))
    ids = torch.tensor([tokenizer.encode("def area(width, height):\n")])
    out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=1)
    assert set(out[0, ids.shape[1] :].tolist()) <= steered


def test_saved_directory_round_trips(tokenizer: Any, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = build_tiny_llama(tmp_path / "m", tokenizer=tokenizer, seed=3, hidden_size=32)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.hidden_size == 32 and model.config.intermediate_size == 64
    assert model.config.tie_word_embeddings
    assert len(AutoTokenizer.from_pretrained(out)) == len(tokenizer)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endless": ("no-such-token",)}, "not single tokens"),
        ({"endless": ("self", "value", "width")}, "at most 2"),
        ({"endless": "self"}, "sequence of tokens"),
        ({"endless": ("self",), "tie_word_embeddings": True}, "tie_word_embeddings=False"),
    ],
)
def test_bad_arguments_are_refused(tokenizer: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        tiny_llama(tokenizer, **kwargs)


def test_role_tokens_must_be_specials() -> None:
    with pytest.raises(ValueError, match="not in specials"):
        train_bpe_tokenizer(CORPUS, specials=[END_OF_TEXT], pad="<pad>")
