"""Token healing (model_runtime.healing + the engine's constrained decode).

Table-driven on identifiers cut at every character position, for every FIM family (tiny BPE
tokenizers for starcoder / deepseek / none, the session's CodeLlama-style SentencePiece one,
and the real Qwen2.5-Coder and SmolLM2 tokenizers), in PSM and SPM order:

- the prompt keeps its header and every FIM sentinel, exactly once, and encodes exactly the
  document prefix minus the healed characters;
- the back-off point is a boundary of the natural tokenization of the completed line;
- every constrained decode path (the natural tokens, the longest / shortest candidates, random
  ones) re-creates the removed characters exactly and never offers a special token;
- with a tiny model scripted to make the ``.comman`` -> ``mand()`` mistake, the engine's
  completion never repeats what the user typed.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from model_runtime.engine import CompletionRequest, Engine
from model_runtime.fim import FimTemplate, decode_infill_text, detect_template, encode
from model_runtime.healing import (
    MAX_HEAL_CHARS,
    advance,
    build_table,
    heal_table,
    plan_from_tokens,
    plan_healing,
)
from model_runtime.prompt import build_prompt, comment_header
from model_runtime.tiny import END_OF_TEXT, STARCODER_FIM, tiny_llama, train_bpe_tokenizer

PATH = "src/cli.py"
HEAD = "import click\n\n\n@click.command()\ndef main(ctx):\n"
TAIL = "\n\n\nif __name__ == '__main__':\n    main()\n"
LINES = [
    "@click.version_option(version=__version__)",
    "    obj = ctx.ensure_object(dict)",
    "        return self.command(args)",
    "    path = std::io:: version",
    "\tcount += len(items)  # café",
]
"""Each line is cut at every character position: prefix = HEAD + line[:k]."""
CASES = [(line, k) for line in LINES for k in range(len(line) + 1)]

CORPUS = [
    HEAD + "\n".join(LINES) + TAIL,
    "x = self.command(args)\ny = self.mand()\nself.command()\nctx.ensure_object()\n",
    "z = self.comman\n",
    "def version_option(version):\n    return version_option(version)\n",
] * 6
DEEPSEEK = ["<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"]
DEEPSEEK_FIM = ["<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"]


def _bpe(family: str) -> Any:
    if family == "starcoder":
        return train_bpe_tokenizer(CORPUS, specials=[END_OF_TEXT, *STARCODER_FIM], vocab_size=420)
    if family == "deepseek":
        return train_bpe_tokenizer(
            CORPUS, specials=[*DEEPSEEK, *DEEPSEEK_FIM], bos=DEEPSEEK[0], eos=DEEPSEEK[1]
        )
    return train_bpe_tokenizer(CORPUS, specials=[END_OF_TEXT], vocab_size=420)


@pytest.fixture(scope="module")
def bpe_tokenizers() -> dict[str, Any]:
    return {family: _bpe(family) for family in ("starcoder", "deepseek", "none")}


@pytest.fixture(scope="module")
def qwen_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from model_runtime.spec import QWEN_CODER_MODEL, resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(QWEN_CODER_MODEL))


@pytest.fixture(scope="module")
def smollm2_tokenizer() -> Any:
    from transformers import AutoTokenizer

    from model_runtime.spec import SMOLLM2_MODEL, resolve_model

    return AutoTokenizer.from_pretrained(resolve_model(SMOLLM2_MODEL))


def _sentinels(template: FimTemplate) -> list[int]:
    ids = [template.prefix_id, template.suffix_id, template.middle_id]
    return [i for i in ids if i is not None]


def _prefix_segment(template: FimTemplate, ids: list[int], spm: bool) -> list[int]:
    if not template.supports_fim:
        return ids[1:] if template.bos_id is not None else ids
    pre, suf, mid = template.prefix_id, template.suffix_id, template.middle_id
    assert pre is not None and suf is not None and mid is not None
    if spm:
        return ids[ids.index(mid) + 1 :]
    return ids[ids.index(pre) + 1 : ids.index(suf)]


def _paths(table: Any, heal: str, natural: list[int], seed: int) -> Iterator[list[int]]:
    """Constrained choices: the natural tokens, then longest / shortest / random candidates."""
    yield natural
    for strategy in ("longest", "shortest", "random"):
        rng = random.Random(seed)
        chosen: list[int] = []
        remaining = heal
        while remaining:
            options = table.candidates(remaining)
            assert options, f"no token can re-create {remaining!r}"
            if strategy == "random":
                pick = rng.choice(options)
            else:
                key = lambda tid: len(table.text_of[tid])  # noqa: E731
                pick = max(options, key=key) if strategy == "longest" else min(options, key=key)
            chosen.append(pick)
            text = table.text_of[pick]
            remaining = remaining[len(text) :] if remaining.startswith(text) else ""
        yield chosen


def _check_family(tokenizer: Any, *, expect_fim: bool) -> dict[str, int]:
    """Run every case of the table; return counters (the assertions are inside)."""
    template = detect_template(tokenizer)
    assert template.supports_fim == expect_fim
    table = heal_table(tokenizer)
    forbidden = set(template.stop_ids) | set(_sentinels(template))
    if template.bos_id is not None:
        forbidden.add(template.bos_id)
    header = comment_header(PATH)
    stats = {"cases": 0, "healed": 0, "natural": 0, "natural_unhealed": 0}
    for line, cut in CASES:
        prefix, rest = HEAD + line[:cut], line[cut:]
        heal = plan_healing(tokenizer, prefix)
        assert prefix.endswith(heal) and len(heal) <= MAX_HEAL_CHARS
        kept = prefix[: len(prefix) - len(heal)]
        # 1. The prompt: header and sentinels intact, exactly the kept document prefix.
        for spm in (False, True) if expect_fim else (False,):
            prompt = build_prompt(
                tokenizer, template, path=PATH, prefix=kept, suffix=rest + TAIL, spm=spm
            )
            ids = prompt.input_ids
            assert prompt.header == header and prompt.prefix == header + kept
            assert not prompt.prefix_truncated
            for sentinel in _sentinels(template):
                assert ids.count(sentinel) == 1
            if template.bos_id is not None:
                assert ids[0] == template.bos_id
            segment = _prefix_segment(template, ids, spm)
            assert segment == encode(tokenizer, header + kept)
            assert decode_infill_text(tokenizer, segment) in (header + kept, " " + header + kept)
        # 2. A natural boundary: the completed line's own tokens start with the kept ones.
        full = encode(tokenizer, header + prefix + rest + "\n")
        kept_ids = encode(tokenizer, header + kept)
        natural = full[: len(kept_ids)] == kept_ids
        unhealed = encode(tokenizer, header + prefix)
        stats["cases"] += 1
        stats["healed"] += bool(heal)
        stats["natural"] += natural
        stats["natural_unhealed"] += full[: len(unhealed)] == unhealed
        if not heal:
            continue
        # 3. Every constrained path re-creates the removed text, without special tokens.
        natural_path: list[int] = []
        if natural:
            for tid in full[len(kept_ids) :]:
                natural_path.append(tid)
                if len(decode_infill_text(tokenizer, natural_path)) >= len(heal):
                    break
        for path in _paths(table, heal, natural_path, seed=cut):
            remaining = heal
            for step, tid in enumerate(path):
                assert remaining, "a path must stop once the text is re-created"
                assert tid not in forbidden
                assert tid in table.candidates(remaining), (heal, step, table.text_of.get(tid))
                produced = template.decode_middle(tokenizer, path[: step + 1])
                remaining, body = advance(heal, produced)
                assert body is not None or heal.startswith(produced)
            assert remaining == "" and produced.startswith(heal), (heal, produced)
    return stats


@pytest.mark.parametrize("family", ["starcoder", "deepseek", "none"])
def test_bpe_families_heal_every_cut(bpe_tokenizers: dict[str, Any], family: str) -> None:
    tokenizer = bpe_tokenizers[family]
    assert detect_template(tokenizer).name == family
    stats = _check_family(tokenizer, expect_fim=family != "none")
    assert stats["natural"] == stats["cases"], stats
    assert stats["natural_unhealed"] < 0.8 * stats["cases"]


def test_codellama_sentencepiece_heals_every_cut(codellama_tokenizer: Any) -> None:
    assert detect_template(codellama_tokenizer).name == "codellama"
    stats = _check_family(codellama_tokenizer, expect_fim=True)
    assert stats["natural"] >= 0.95 * stats["cases"], stats


@pytest.mark.slow
def test_qwen_tokenizer_heals_every_cut(qwen_tokenizer: Any) -> None:
    assert detect_template(qwen_tokenizer).name == "qwen"
    stats = _check_family(qwen_tokenizer, expect_fim=True)
    assert stats["natural"] == stats["cases"], stats
    assert stats["natural_unhealed"] < 0.5 * stats["cases"]


@pytest.mark.slow
def test_smollm2_tokenizer_heals_every_cut(smollm2_tokenizer: Any) -> None:
    stats = _check_family(
        smollm2_tokenizer, expect_fim=detect_template(smollm2_tokenizer).supports_fim
    )
    assert stats["natural"] == stats["cases"], stats


@pytest.mark.slow
@pytest.mark.parametrize(
    ("prefix", "healed", "kept_ends"),
    [
        ("x = self.comman", ".comman", "self"),
        ("use foo:: ver", " ver", "::"),
        ("@click.version_op", "_op", "version"),
        ("obj = ctx.ensure_obj", "_obj", ".ensure"),
        ("def f(a):\n    ", "    ", ":\n"),
    ],
)
def test_qwen_examples_from_the_issue(
    qwen_tokenizer: Any, prefix: str, healed: str, kept_ends: str
) -> None:
    assert plan_healing(qwen_tokenizer, prefix) == healed
    assert prefix[: len(prefix) - len(healed)].endswith(kept_ends)


def test_special_tokens_in_the_document_are_never_healed_away(
    bpe_tokenizers: dict[str, Any],
) -> None:
    tokenizer = bpe_tokenizers["starcoder"]
    # Document text that spells a FIM sentinel is tokenized as that sentinel: keep it.
    assert plan_healing(tokenizer, "s = '<fim_middle>") == ""
    healed = plan_healing(tokenizer, "s = '<fim_middle>comman")
    assert healed and "<fim_middle>comman".endswith(healed) and "<" not in healed


def test_table_lookups_match_a_linear_scan() -> None:
    texts = ["a", "ab", "abc", "abd", "b", " ver", " version", " v", "ver", "ab", "\n", "\n  "]
    table = build_table(enumerate(texts))
    for remaining in ["a", "ab", "abx", " ver", " versio", " vers", "\n ", "z", "ver_"]:
        expected = sorted(
            tid
            for tid, text in enumerate(texts)
            if text.startswith(remaining) or (remaining.startswith(text) and text != remaining)
        )
        assert sorted(table.candidates(remaining)) == expected, remaining
    assert table.exact("ab") == [1, 9]
    assert table.can_cross("ab", "ab") and not table.can_cross("abc", "abc")
    assert table.can_cross(" v", " ver") and not table.can_cross(" ver", " ver_")


def test_plan_from_tokens_stops_at_stable_boundaries() -> None:
    texts = {0: "x", 1: ".", 2: "com", 3: "man", 4: "command", 5: " ", 6: "  ", 7: "="}
    table = build_table(texts.items())
    # "com"+"man" can become "command": both go; nothing starts with "." + letters: "." stays.
    assert plan_from_tokens(table, "x.comman", [0, 1, 2, 3], whole=True) == "comman"
    # Trailing whitespace always goes, and "=" stays (no "= " token).
    assert plan_from_tokens(table, "x =  ", [0, 5, 7, 6], whole=True) == "  "
    # At most max_tokens tokens, and never the first (possibly cut) token of a tail.
    assert plan_from_tokens(table, "x.comman", [0, 1, 2, 3], whole=True, max_tokens=1) == ""
    mand = build_table([*texts.items(), (9, "mand")])  # now "man" itself can be extended
    assert plan_from_tokens(mand, "x.comman", [0, 1, 2, 3], whole=True, max_tokens=1) == "man"
    assert plan_from_tokens(mand, "comman", [2, 3], whole=False) == "man"
    assert plan_from_tokens(mand, "comman", [2, 3], whole=True) == "comman"
    # An id outside the table (a special token) stops the walk.
    assert plan_from_tokens(table, "x.comman", [0, 1, 2, 99], whole=True) == ""
    # A token that straddles an earlier boundary ("x " over "x" + " ") takes the cut back.
    wider = build_table([*texts.items(), (8, "x ")])
    assert plan_from_tokens(wider, "x =  ", [0, 5, 7, 6], whole=True) == "x =  "


def test_advance() -> None:
    assert advance("comman", "com") == ("man", None)
    assert advance("comman", "comman") == ("", "")
    assert advance("comman", "command()") == ("", "d()")
    assert advance("comman", "comx") == ("", "x")


# -- the engine, with tiny models ----------------------------------------------------------


def _loaded(tokenizer: Any, model: Any) -> Any:
    from model_runtime.tiny import in_memory

    return in_memory(model, tokenizer)


def _scripted(tokenizer: Any, script: dict[str, str], seed: int = 0) -> Any:
    """A tiny model whose next token is ``script[text of the last token]`` (if any).

    The last token is the last input token, or for a PSM prompt (which ends with the middle
    sentinel) the last token of the prefix, i.e. the one before the suffix sentinel.
    """
    vocab = tokenizer.get_vocab()
    bias = {vocab[last]: vocab[nxt] for last, nxt in script.items()}
    template = detect_template(tokenizer)
    model = tiny_llama(tokenizer, seed=seed, hidden_size=48)

    def hook(module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> Any:
        ids = kwargs["input_ids"][0].tolist()
        logits = output.logits
        keep = logits.shape[1]
        for position in range(keep):
            last = ids[len(ids) - keep + position]
            if last == template.middle_id and template.suffix_id in ids:
                last = ids[ids.index(template.suffix_id) - 1]
            wanted = bias.get(last)
            if wanted is not None:
                logits[0, position, wanted] += 50.0
        return output

    model.register_forward_hook(hook, with_kwargs=True)
    return model


DUPLICATING = {".": "command", "comman": "mand", "mand": "()", "command": "()", "()": END_OF_TEXT}
"""After ``.`` the model writes ``command``; after a cut ``comman`` it writes ``mand`` (the
issue's ``.commanmand()`` mistake); after ``()`` it stops."""


@pytest.fixture(scope="module")
def starcoder_tokenizer(bpe_tokenizers: dict[str, Any]) -> Any:
    tokenizer = bpe_tokenizers["starcoder"]
    vocab = tokenizer.get_vocab()
    for token in ("comman", "command", "mand", "()", "."):
        assert token in vocab, token  # the script below relies on these single tokens
    assert encode(tokenizer, "x = self.comman")[-2:] == [vocab["."], vocab["comman"]]
    return tokenizer


@pytest.mark.parametrize("spm", [False, True])
def test_engine_never_repeats_the_typed_part(starcoder_tokenizer: Any, spm: bool) -> None:
    tokenizer = starcoder_tokenizer
    model = _scripted(tokenizer, DUPLICATING)
    request = CompletionRequest(PATH, "x = self.comman", "\n", max_new_tokens=8)
    plain = Engine(_loaded(tokenizer, model), token_healing=False, spm=spm).complete(request)
    assert plain.healed == "" and plain.text == "mand()"  # the bug, reproduced
    healed = Engine(_loaded(tokenizer, model), spm=spm).complete(request)
    assert healed.healed == "comman"
    assert healed.raw_text.startswith("comman") and healed.raw_text == "command()"
    assert healed.text == "d()" and request.prefix + healed.text == "x = self.command()"
    assert healed.stop_reason == "eos"


def test_engine_is_forced_through_the_constraint(starcoder_tokenizer: Any) -> None:
    """A model that wants ``()`` right after the ``.``: the constraint re-creates ``comman``
    token by token (against the model's preference) before ``()`` is allowed."""
    tokenizer = starcoder_tokenizer
    model = _scripted(tokenizer, {".": "()", "()": END_OF_TEXT})
    engine = Engine(_loaded(tokenizer, model), kv_reuse=False)
    request = CompletionRequest(PATH, "x = self.comman", "\n", max_new_tokens=12)
    result = engine.complete(request)
    assert result.healed == "comman" and result.raw_text.startswith("comman")
    assert result.tokens >= 1 and not result.text.startswith("comman")
    assert result.text == result.raw_text[len("comman") :].rstrip()
    # The prompt is the one of the prefix without the healed characters.
    stripped = Engine(_loaded(tokenizer, model), token_healing=False, kv_reuse=False)
    unhealed = dataclasses.replace(request, prefix="x = self.")
    assert engine.prompt_for(request).input_ids == stripped.prompt_for(unhealed).input_ids


def test_typing_through_a_word_reuses_the_whole_prompt(starcoder_tokenizer: Any) -> None:
    tokenizer = starcoder_tokenizer
    engine = Engine(_loaded(tokenizer, _scripted(tokenizer, DUPLICATING)))
    first = engine.complete(CompletionRequest(PATH, "x = self.c", "\n", max_new_tokens=4))
    for typed in ("co", "com", "comm", "comma", "comman"):
        result = engine.complete(
            CompletionRequest(PATH, "x = self." + typed, "\n", max_new_tokens=4)
        )
        assert result.healed == typed
        assert result.prompt_tokens == first.prompt_tokens
        assert result.reused_tokens == result.prompt_tokens - 1
        assert not ("x = self." + typed + result.text).startswith("x = self." + typed + typed)


def test_codellama_engine_heals_mid_word_in_both_orders(
    loaded_factory: Callable[..., Any],
) -> None:
    loaded = loaded_factory()
    for order in ("psm", "spm"):
        served = dataclasses.replace(loaded, fim_order=order)
        engine = Engine(served, kv_reuse=False)
        request = CompletionRequest(PATH, "def f(items):\n    return ite", "\n", max_new_tokens=6)
        result = engine.complete(request)
        assert result.healed and request.prefix.endswith(result.healed)
        assert result.raw_text.startswith(result.healed)
        off = Engine(served, token_healing=False, kv_reuse=False)
        cut = dataclasses.replace(request, prefix=request.prefix[: -len(result.healed)])
        assert engine.prompt_for(request).input_ids == off.prompt_for(cut).input_ids


def test_healing_off_keeps_the_prompt(starcoder_tokenizer: Any) -> None:
    tokenizer = starcoder_tokenizer
    loaded = _loaded(tokenizer, tiny_llama(tokenizer, hidden_size=48))
    request = CompletionRequest(PATH, "x = self.comman", "\n", max_new_tokens=2)
    off = Engine(loaded, token_healing=False)
    prompt = build_prompt(
        tokenizer, loaded.template, path=PATH, prefix=request.prefix, suffix=request.suffix
    )
    assert off.prompt_for(request).input_ids == prompt.input_ids
    assert off.complete(request).healed == ""
