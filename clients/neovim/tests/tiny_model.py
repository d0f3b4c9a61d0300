"""Build a tiny random Llama model with a StarCoder-style FIM tokenizer, for fast editor tests.

The weights are random (seeded), so completions are nonsense, but they come from the real
transformers model through the real server: a few milliseconds per token on a CPU.
The recipe is ``model_runtime.tiny``; this script fixes its arguments and caches the result.
Usage: ``python tiny_model.py OUT_DIR``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
# The recipe lives in the repository's ``training`` package (installed editable in the venv).
sys.path.append(str(REPO))

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def greet(name):\n    print(f'hello {name}')\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "for i in range(10):\n    total += i\n",
    "import os\nimport sys\n\nif __name__ == '__main__':\n    main()\n",
    "x = [n * n for n in numbers if n % 2 == 0]\n",
]
# Every printable ASCII character and newline, and nothing else: the random model can only ever
# write text a user could type (no control bytes, no broken UTF-8).
ALPHABET = "".join(chr(c) for c in range(32, 127)) + "\n"
SPECIAL = ["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"]
VERSION = 2
"""Bump when this recipe changes, so cached copies are rebuilt (changes to the shared builder
module rebuild them too: its hash is part of the stamp)."""


def _recipe() -> dict[str, object]:
    from model_runtime import tiny

    builder = hashlib.sha256(Path(tiny.__file__).read_bytes()).hexdigest()
    return {"version": VERSION, "builder": builder}


def build_tiny_model(out: Path, *, seed: int = 0) -> Path:
    """Write tokenizer + model to ``out`` (reused when already built with this recipe)."""
    stamp = out / "tiny_model.json"
    recipe = {**_recipe(), "seed": seed}
    if stamp.exists() and json.loads(stamp.read_text()) == recipe:
        return out
    from model_runtime.tiny import build_tiny_llama, train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(
        [ALPHABET, *CORPUS * 20],
        specials=SPECIAL,
        unk="<|endoftext|>",
        pad="<fim_pad>",
        extra_specials=SPECIAL[1:],
        byte_alphabet=False,
    )
    build_tiny_llama(out, tokenizer=tokenizer, seed=seed, tie_word_embeddings=False)
    stamp.write_text(json.dumps(recipe))
    return out


if __name__ == "__main__":
    print(build_tiny_model(Path(sys.argv[1])))
