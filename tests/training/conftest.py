"""Fixtures for training tests: a tiny random Llama with a small BPE tokenizer, and workspaces."""

from __future__ import annotations

import hashlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from model_runtime.tiny import END_OF_TEXT, STARCODER_FIM, build_tiny_llama, train_bpe_tokenizer

SAMPLE_FILES: dict[str, str] = {
    "pkg/geometry.py": '''
        """Small geometry helpers."""
        import math


        class Point:
            def __init__(self, x: float, y: float) -> None:
                self.x = x
                self.y = y

            def distance(self, other: "Point") -> float:
                return math.hypot(self.x - other.x, self.y - other.y)

            def scaled(self, factor: float) -> "Point":
                return Point(self.x * factor, self.y * factor)


        def centroid(points: list[Point]) -> Point:
            n = len(points)
            return Point(sum(p.x for p in points) / n, sum(p.y for p in points) / n)
    ''',
    "pkg/strings.py": '''
        """String helpers."""


        def snake_to_camel(name: str) -> str:
            head, *rest = name.split("_")
            return head + "".join(part.title() for part in rest)


        def camel_to_snake(name: str) -> str:
            out = []
            for ch in name:
                if ch.isupper():
                    out.append("_" + ch.lower())
                else:
                    out.append(ch)
            return "".join(out).lstrip("_")


        def truncate(text: str, width: int) -> str:
            return text if len(text) <= width else text[: width - 1] + "…"
    ''',
    "pkg/stats.py": '''
        """Statistics helpers."""


        def mean(values: list[float]) -> float:
            return sum(values) / len(values)


        def variance(values: list[float]) -> float:
            m = mean(values)
            return sum((v - m) ** 2 for v in values) / len(values)


        def median(values: list[float]) -> float:
            ordered = sorted(values)
            mid = len(ordered) // 2
            if len(ordered) % 2:
                return ordered[mid]
            return (ordered[mid - 1] + ordered[mid]) / 2
    ''',
    "pkg/config.py": '''
        """Configuration loading."""
        import json
        from pathlib import Path


        def load_config(path: Path) -> dict:
            with path.open() as f:
                return json.load(f)


        def save_config(path: Path, config: dict) -> None:
            path.write_text(json.dumps(config, indent=2))
    ''',
}


def write_records(path: Path, files: dict[str, str]) -> Path:
    """A records JSONL in the dataset schema (what dataset.api writes)."""
    with path.open("w", encoding="utf-8") as f:
        for rel, text in files.items():
            content = textwrap.dedent(text).lstrip("\n")
            rec: dict[str, Any] = {
                "file_path": rel,
                "content": content,
                "language": "python",
                "sha256": hashlib.sha256(content.encode()).hexdigest(),
                "size": len(content.encode()),
                "mtime": 0.0,
                "source": "file",
                "redactions": 0,
                "schema_version": 1,
            }
            f.write(json.dumps(rec) + "\n")
    return path


def _corpus() -> list[str]:
    return [textwrap.dedent(t) for t in SAMPLE_FILES.values()] * 3


def build_tiny_model(out: Path, *, with_fim: bool = False, vocab_size: int = 600) -> Path:
    """Train a byte-level BPE on the sample code and save a 2-layer random Llama next to it."""
    specials = [END_OF_TEXT, "<pad>", *(STARCODER_FIM if with_fim else ())]
    tokenizer = train_bpe_tokenizer(
        _corpus(), specials=specials, pad="<pad>", vocab_size=vocab_size
    )
    return build_tiny_llama(out, tokenizer=tokenizer, hidden_size=32, max_positions=1024)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama whose tokenizer has no FIM tokens (like the bundled SmolLM2)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_fim_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with StarCoder-style FIM tokens in its tokenizer."""
    return build_tiny_model(tmp_path_factory.mktemp("tinyfim") / "model", with_fim=True)


@pytest.fixture
def records_file(tmp_path: Path) -> Path:
    """The sample files as a records JSONL."""
    return write_records(tmp_path / "dataset.jsonl", SAMPLE_FILES)


@pytest.fixture
def sample_records() -> list[dict[str, Any]]:
    """The sample files as in-memory records."""
    return [
        {"file_path": p, "content": textwrap.dedent(t).lstrip("\n"), "source": "file"}
        for p, t in SAMPLE_FILES.items()
    ]
