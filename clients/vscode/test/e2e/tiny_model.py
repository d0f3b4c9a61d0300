"""Build a tiny random Llama (2 layers, byte-level BPE with StarCoder FIM tokens) for the VS Code e2e.

``--endless`` steers the output head so greedy decoding only emits the tokens ``self`` and
``value`` and never a stop token: the ghost text is then deterministic (and non-empty), which is
what the end-to-end test asserts on. Usage: ``python tiny_model.py OUT_DIR [--endless]``.

Run it with the project's Python (scripts/test.sh uses ``$SERVER_PYTHON``): the recipe is
``model_runtime.tiny``; this script only fixes its arguments (corpus, tokens, steering).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

# The recipe lives in the repository's ``training`` package (installed editable in the venv).
sys.path.append(str(Path(__file__).resolve().parents[4]))

CORPUS = textwrap.dedent(
    '''
    """Geometry helpers."""
    import math


    class Point:
        def __init__(self, x: float, y: float) -> None:
            self.x = x
            self.y = y
            self.value = x * y

        def distance(self, other: "Point") -> float:
            return math.hypot(self.x - other.x, self.y - other.y)


    def mean(values: list[float]) -> float:
        return sum(values) / len(values)
    '''
)


def build(out: Path, *, endless: bool) -> Path:
    """Write tokenizer and weights to ``out`` (a directory ``from_pretrained`` accepts)."""
    from model_runtime.tiny import (
        END_OF_TEXT,
        STARCODER_FIM,
        build_tiny_llama,
        train_bpe_tokenizer,
    )

    tokenizer = train_bpe_tokenizer(
        [CORPUS] * 4, specials=[END_OF_TEXT, "<pad>", *STARCODER_FIM], pad="<pad>"
    )
    return build_tiny_llama(out, tokenizer=tokenizer, endless=("self", "value") if endless else ())


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and build the model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--endless", action="store_true")
    args = parser.parse_args(argv)
    print(build(args.out, endless=args.endless))
    return 0


if __name__ == "__main__":
    sys.exit(main())
