"""Build a tiny random Llama model with a StarCoder-style FIM tokenizer, for fast editor tests.

The weights are random (seeded), so completions are nonsense, but they come from the real
transformers model through the real server: a few milliseconds per token on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

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
"""Bump when the recipe changes, so cached copies are rebuilt."""


def build_tiny_model(out: Path, *, seed: int = 0) -> Path:
    """Write tokenizer + model to ``out`` (reused when already built with this recipe)."""
    stamp = out / "tiny_model.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("version") == VERSION:
        return out
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL)
    tok.train_from_iterator([ALPHABET, *CORPUS * 20], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<fim_pad>",
        additional_special_tokens=SPECIAL[1:],
    )
    fast.save_pretrained(out)
    torch.manual_seed(seed)
    eos = fast.convert_tokens_to_ids("<|endoftext|>")
    assert isinstance(eos, int)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=fast.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    stamp.write_text(json.dumps({"version": VERSION, "seed": seed}))
    return out


if __name__ == "__main__":
    import sys

    print(build_tiny_model(Path(sys.argv[1])))
