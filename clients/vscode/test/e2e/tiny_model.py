"""Build a tiny random Llama (2 layers, byte-level BPE with StarCoder FIM tokens) for the VS Code e2e.

``--endless`` steers the output head so greedy decoding only emits the tokens ``self`` and
``value`` and never a stop token: the ghost text is then deterministic (and non-empty), which is
what the end-to-end test asserts on. Usage: ``python tiny_model.py OUT_DIR [--endless]``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

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
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<pad>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([CORPUS] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<pad>",
        additional_special_tokens=specials[2:],
    )
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=not endless,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    if endless:
        word_a, word_b = fast.convert_tokens_to_ids(["self", "value"])
        with torch.no_grad():
            model.model.norm.weight.zero_()
            model.model.norm.weight[0] = 1.0
            model.lm_head.weight.zero_()
            model.lm_head.weight[word_a, 0] = 10.0
            model.lm_head.weight[word_b, 0] = -10.0
    model.save_pretrained(out)
    return out


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
