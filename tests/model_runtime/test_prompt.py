"""Token-budgeted prompts."""

from __future__ import annotations

from typing import Any

import pytest

from model_runtime.fim import detect_template, encode
from model_runtime.prompt import build_prompt, comment_header, guess_language


@pytest.mark.parametrize(
    ("path", "language", "expected"),
    [
        ("src/app.py", None, "# path: src/app.py\n"),
        ("main.rs", None, "// path: main.rs\n"),
        ("init.lua", None, "-- path: init.lua\n"),
        ("index.html", None, "<!-- path: index.html -->\n"),
        ("style.css", None, "/* path: style.css */\n"),
        ("weird.xyz", "typescript", "// path: weird.xyz\n"),
        ("data.json", "json", ""),
        ("", "python", ""),
        ("dir\\win.py", None, "# path: dir/win.py\n"),
    ],
)
def test_comment_header(path: str, language: str | None, expected: str) -> None:
    assert comment_header(path, language) == expected


def test_guess_language() -> None:
    assert guess_language("a/b/Makefile") == "make"
    assert guess_language("x.TSX") == "typescriptreact"
    assert guess_language("README") is None


def _document(lines: int) -> str:
    return "".join(f"value_{n} = compute({n}, 'text {n}')\n" for n in range(lines))


def test_small_document_is_kept_whole(codellama_tokenizer: Any) -> None:
    template = detect_template(codellama_tokenizer)
    prompt = build_prompt(
        codellama_tokenizer, template, path="m.py", prefix="x = 1\ny = ", suffix="\nz = 3\n"
    )
    assert prompt.prefix == "# path: m.py\nx = 1\ny = "
    assert prompt.suffix == "\nz = 3\n"
    assert not prompt.prefix_truncated and not prompt.suffix_truncated
    assert prompt.input_ids == template.encode_infill(
        codellama_tokenizer, prompt.prefix, prompt.suffix
    )


@pytest.mark.parametrize("budget", [64, 256, 1536])
def test_budget_prefix_heavy_line_cuts(codellama_tokenizer: Any, budget: int) -> None:
    template = detect_template(codellama_tokenizer)
    prefix = _document(400) + "result = comp"
    suffix = "ute(1)\n" + _document(400)
    prompt = build_prompt(
        codellama_tokenizer, template, path="m.py", prefix=prefix, suffix=suffix,
        context_tokens=budget,
    )  # fmt: skip
    assert len(prompt.input_ids) <= budget
    assert len(prompt.input_ids) >= budget * 0.85  # the budget is actually used
    body = prompt.prefix[len(prompt.header) :]
    assert prompt.header == "# path: m.py\n"
    assert body.endswith("result = comp") and prefix.endswith(body)
    assert body.startswith("value_")  # cut at a line boundary
    assert suffix.startswith(prompt.suffix) and prompt.suffix.endswith("\n")
    prefix_tokens = len(encode(codellama_tokenizer, body))
    suffix_tokens = len(encode(codellama_tokenizer, prompt.suffix))
    assert prefix_tokens > 2 * suffix_tokens  # prefix-heavy (3:1)
    assert prompt.prefix_truncated and prompt.suffix_truncated


def test_unused_suffix_budget_goes_to_the_prefix(codellama_tokenizer: Any) -> None:
    template = detect_template(codellama_tokenizer)
    prompt = build_prompt(
        codellama_tokenizer, template, path="m.py", prefix=_document(400), suffix="",
        context_tokens=256,
    )  # fmt: skip
    # Only whole lines fit: at most one line's tokens (plus header and specials) stay unused.
    slack = (
        len(encode(codellama_tokenizer, _document(1)))
        + len(encode(codellama_tokenizer, prompt.header))
        + 4
    )
    assert 256 - slack <= len(prompt.input_ids) <= 256


def test_huge_single_line_is_cut_by_characters(codellama_tokenizer: Any) -> None:
    template = detect_template(codellama_tokenizer)
    prefix = "x = '" + "abc def " * 5000
    prompt = build_prompt(
        codellama_tokenizer, template, path="m.py", prefix=prefix, suffix="'\n" + "y" * 50000,
        context_tokens=128,
    )  # fmt: skip
    assert len(prompt.input_ids) <= 128
    assert prefix.endswith(prompt.prefix[len(prompt.header) :])


def test_none_template_uses_the_whole_budget_for_the_prefix(plain_tokenizer: Any) -> None:
    template = detect_template(plain_tokenizer)
    prompt = build_prompt(
        plain_tokenizer, template, path="m.py", prefix=_document(400), suffix=_document(50),
        context_tokens=200,
    )  # fmt: skip
    assert prompt.suffix == ""
    slack = len(encode(plain_tokenizer, _document(1))) + len(encode(plain_tokenizer, prompt.header))
    assert 200 - slack - 4 <= len(prompt.input_ids) <= 200


def test_rejects_tiny_budget(codellama_tokenizer: Any) -> None:
    with pytest.raises(ValueError, match="context_tokens"):
        build_prompt(
            codellama_tokenizer, detect_template(codellama_tokenizer), path="", prefix="",
            suffix="", context_tokens=4,
        )  # fmt: skip
