"""Records → chunks → FIM training sequences with the runtime's template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from training.examples import build_examples, chunk_text, path_header


@pytest.fixture(scope="module")
def fim_tok(tiny_fim_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_fim_model)


def test_chunks_cover_text_and_fit(fim_tok: Any, sample_records: list[dict[str, Any]]) -> None:
    text = "".join(r["content"] for r in sample_records) * 3
    chunks = chunk_text(text, fim_tok, 64)
    assert "".join(chunks) == text
    assert len(chunks) > 3
    for c in chunks:
        assert len(fim_tok(c, add_special_tokens=False)["input_ids"]) <= 64
    # cuts prefer line starts
    assert sum(c.endswith("\n") for c in chunks[:-1]) >= len(chunks[:-1]) * 0.8


def test_examples_fit_context_and_use_fim_tokens(
    fim_tok: Any, sample_records: list[dict[str, Any]]
) -> None:
    from model_runtime.fim import detect_template

    template = detect_template(fim_tok)
    assert template.name == "starcoder"
    records = sample_records * 20  # same paths: same FIM draws, so vary the path
    records = [{**r, "file_path": f"{i}/{r['file_path']}"} for i, r in enumerate(records)]
    examples, stats = build_examples(records, fim_tok, template, context_len=96, seed=1)
    assert stats.files == len(records) and stats.chunks == len(examples) > len(records)
    assert stats.truncated == 0
    assert all(len(e) <= 96 for e in examples)
    assert 0.8 < stats.fim / stats.chunks < 0.97
    assert 0.35 < stats.spm / stats.fim < 0.65
    fim = [e for e in examples if e.fim]
    assert all(e.input_ids[-1] == template.end_id for e in fim)
    assert all(template.middle_id in e.input_ids for e in fim)
    header = path_header(examples[0].path, "python")
    assert header.strip() and examples[0].path in header
    # the path header is in the decoded example
    assert examples[0].path in fim_tok.decode(examples[0].input_ids)


def test_examples_are_deterministic(fim_tok: Any, sample_records: list[dict[str, Any]]) -> None:
    from model_runtime.fim import detect_template

    template = detect_template(fim_tok)
    a, _ = build_examples(sample_records, fim_tok, template, context_len=80, seed=3)
    b, _ = build_examples(list(reversed(sample_records)), fim_tok, template, context_len=80, seed=3)
    assert sorted(e.input_ids for e in a) == sorted(e.input_ids for e in b)


def test_commit_records_and_empty_files_are_skipped(
    fim_tok: Any, sample_records: list[dict[str, Any]]
) -> None:
    from model_runtime.fim import detect_template

    extra = [
        {"file_path": "c", "content": "diff", "source": "commit"},
        {"file_path": "e.py", "content": "", "source": "file"},
    ]
    _, stats = build_examples(
        sample_records + extra, fim_tok, detect_template(fim_tok), context_len=128
    )
    assert stats.files == len(sample_records) and len(stats.skipped_paths) == 2


def test_repo_context_comes_from_other_training_files_only(fim_tok: Any) -> None:
    """Split rule: the index holds only the records given (the training split)."""
    from model_runtime.fim import detect_template
    from training.split import split_records

    template = detect_template(fim_tok)
    helper = "def scale_value(value, factor):\n    return value * factor\n"
    records = [
        {"file_path": f"pkg/m{i}.py", "content": f"x_{i} = scale_value({i}, 2)\n" * 12}
        for i in range(30)
    ] + [{"file_path": "pkg/helpers.py", "content": helper}]
    split = split_records(records, val_fraction=0.3)
    held_out = split.validation_paths
    assert held_out and split.train
    examples, stats = build_examples(split.train, fim_tok, template, context_len=256, seed=3)
    assert stats.with_context > 0
    for example in examples:
        text = fim_tok.decode(example.input_ids)
        assert len(example) <= 256
        for path in held_out:
            assert f"path: {path}\n" not in text  # no held-out file as context
        assert text.count(f"path: {example.path}\n") == 1  # never its own file as context
    # Off: exactly the plain construction.
    plain, plain_stats = build_examples(
        split.train, fim_tok, template, context_len=256, seed=3, repo_context_tokens=0
    )
    assert plain_stats.with_context == 0
    assert all(f"path: {e.path}\n" in fim_tok.decode(e.input_ids) for e in plain)
