"""FIM templates: CodeLlama token-exactness against Meta's construction, other families."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from model_runtime.fim import (
    STARCODER_FIM_TOKENS,
    TemplateError,
    detect_template,
    encode,
    encode_infill_text,
    template_by_name,
)


class MetaOracle:
    """Meta's reference construction (``llama/tokenizer.py`` + ``generation.py``), written from
    the paper's description on top of the raw SentencePiece model."""

    def __init__(self, model_file: Path) -> None:
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.bos = self.sp.bos_id()
        self.pre, self.mid, self.suf, self.eot = (
            self.sp.piece_to_id(p) for p in ("▁<PRE>", "▁<MID>", "▁<SUF>", "▁<EOT>")
        )
        assert self.sp.encode("☺", out_type=str) == ["▁", "☺"]

    def encode(self, s: str) -> list[int]:
        return list(self.sp.encode(s))

    def encode_infilling(self, s: str) -> list[int]:
        # "Encode a string without an implicit leading space."
        return list(self.sp.encode("☺" + s))[2:]

    def psm(self, prefix: str, suffix: str) -> list[int]:
        return [
            self.bos,
            self.pre,
            *self.encode(prefix),
            self.suf,
            *self.encode_infilling(suffix),
            self.mid,
        ]

    def spm_order(self, prefix: str, suffix: str) -> list[int]:
        return [
            self.bos,
            self.pre,
            self.suf,
            *self.encode_infilling(suffix),
            self.mid,
            *self.encode(prefix),
        ]


_PIECES = [
    *"abcdefxyz_(),.:;=+-*/[]{}'\"#",
    " ",
    "  ",
    "    ",
    "\t",
    "\n",
    "\n    ",
    "\n\n",
    "def ",
    "return ",
    "self.",
    "print(",
    "café",
    "über",
    "日本語",
    "🙂",
    "Ω",
    "naïve",
    "\u00a0",
    "0123",
    "value",
    "result",
    "items",
]


def _fuzz_pairs(count: int, seed: int) -> list[tuple[str, str]]:
    """Random prefix/suffix pairs, many made by splitting one text at a random character (so
    the split often falls inside what would be a single token), with leading spaces/newlines."""
    rng = random.Random(seed)
    pairs = []
    for number in range(count):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 40)))
        if number % 3 == 0:
            text = rng.choice([" ", "  ", "\n", "\t "]) + text
        cut = rng.randint(0, len(text))
        prefix, suffix = text[:cut], text[cut:]
        if number % 5 == 0:
            suffix = " " + suffix  # suffix with its own leading space
        pairs.append((prefix, suffix))
    pairs += [("", ""), ("", "x"), ("x", ""), (" ", " "), ("def f(", ")"), ("\n", "\n")]
    return pairs


@pytest.fixture(scope="module")
def oracle(codellama_spm: Path) -> MetaOracle:
    return MetaOracle(codellama_spm)


def test_codellama_detected_with_ids_from_the_tokenizer(codellama_tokenizer: Any) -> None:
    template = detect_template(codellama_tokenizer)
    assert template.name == "codellama"
    ids = codellama_tokenizer.convert_tokens_to_ids(["▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"])
    assert [template.prefix_id, template.suffix_id, template.middle_id, template.end_id] == ids
    assert template.bos_id == codellama_tokenizer.bos_token_id
    assert template.end_id in template.stop_ids
    assert template.fim_tokens == ()


def test_encode_matches_sentencepiece_for_fuzzed_text(
    codellama_tokenizer: Any, oracle: MetaOracle
) -> None:
    for prefix, suffix in _fuzz_pairs(600, seed=1):
        for text in (prefix, suffix):
            assert encode(codellama_tokenizer, text) == oracle.encode(text), repr(text)
            assert encode_infill_text(codellama_tokenizer, text) == oracle.encode_infilling(text), (
                repr(text)
            )


@pytest.mark.parametrize("spm", [False, True], ids=["PSM", "SPM"])
def test_infill_prompt_is_token_exact_with_meta(
    codellama_tokenizer: Any, oracle: MetaOracle, spm: bool
) -> None:
    template = detect_template(codellama_tokenizer)
    pairs = _fuzz_pairs(600, seed=2 if spm else 3)
    assert len(pairs) >= 500
    for prefix, suffix in pairs:
        expected = oracle.spm_order(prefix, suffix) if spm else oracle.psm(prefix, suffix)
        got = template.encode_infill(codellama_tokenizer, prefix, suffix, spm=spm)
        assert got == expected, (prefix, suffix)


def test_encoding_does_not_mutate_the_tokenizer(codellama_tokenizer: Any) -> None:
    before = codellama_tokenizer.backend_tokenizer.to_str()
    plain = codellama_tokenizer.encode(" def foo", add_special_tokens=False)
    detect_template(codellama_tokenizer).encode_infill(codellama_tokenizer, "a ", " b")
    assert codellama_tokenizer.backend_tokenizer.to_str() == before
    assert codellama_tokenizer.encode(" def foo", add_special_tokens=False) == plain


def test_training_sequence_ends_with_eot_and_decodes_the_middle(codellama_tokenizer: Any) -> None:
    template = detect_template(codellama_tokenizer)
    prefix, middle, suffix = "def add(a, b):\n", "    return a + b", "\n\nprint(add(1, 2))\n"
    for spm in (False, True):
        ids = template.encode_training(codellama_tokenizer, prefix, middle, suffix, spm=spm)
        prompt = template.encode_infill(codellama_tokenizer, prefix, suffix, spm=spm)
        assert ids[: len(prompt)] == prompt
        assert ids[-1] == template.end_id
        assert template.decode_middle(codellama_tokenizer, ids[len(prompt) : -1]) == middle


@pytest.mark.parametrize(
    ("name", "tokens", "end"),
    [
        ("starcoder", ["<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<|endoftext|>"], "<|endoftext|>"),
        ("qwen", ["<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|endoftext|>", "<|file_sep|>"], "<|endoftext|>"),
        ("deepseek", ["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>"], "<｜end▁of▁sentence｜>"),
    ],
)  # fmt: skip
def test_other_families_detected_and_formatted(
    plain_tokenizer: Any, name: str, tokens: list[str], end: str
) -> None:
    plain_tokenizer.add_special_tokens({"additional_special_tokens": tokens})
    template = detect_template(plain_tokenizer)
    assert template.name == name
    pre, suf, mid = (plain_tokenizer.convert_tokens_to_ids(t) for t in tokens[:3])
    end_id = plain_tokenizer.convert_tokens_to_ids(end)
    assert template.end_id == end_id
    assert end_id in template.stop_ids
    ids = template.encode_infill(plain_tokenizer, "x = ", "\n", spm=False)
    assert ids == [
        pre,
        *encode(plain_tokenizer, "x = "),
        suf,
        *encode_infill_text(plain_tokenizer, "\n"),
        mid,
    ]
    spm_ids = template.encode_infill(plain_tokenizer, "x = ", "\n", spm=True)
    assert spm_ids[:2] == [pre, suf] and mid in spm_ids
    assert template.encode_training(plain_tokenizer, "a", "b", "c", spm=False)[-1] == end_id


def test_none_template_is_left_to_right_and_lists_tokens_to_add(plain_tokenizer: Any) -> None:
    template = detect_template(plain_tokenizer)
    assert template.name == "none"
    assert template.encode_infill(plain_tokenizer, "def f():\n", "ignored") == encode(
        plain_tokenizer, "def f():\n"
    )
    with pytest.raises(TemplateError, match="fim_tokens"):
        template.encode_training(plain_tokenizer, "a", "b", "c", spm=False)
    assert template.fim_tokens == STARCODER_FIM_TOKENS
    plain_tokenizer.add_special_tokens({"additional_special_tokens": list(template.fim_tokens)})
    assert detect_template(plain_tokenizer).name == "starcoder"


def test_template_by_name_errors(plain_tokenizer: Any) -> None:
    with pytest.raises(TemplateError, match="unknown FIM template"):
        template_by_name("gpt", plain_tokenizer)
    with pytest.raises(TemplateError, match="<fim_prefix>"):
        template_by_name("starcoder", plain_tokenizer)
