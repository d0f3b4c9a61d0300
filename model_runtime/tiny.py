"""Tiny random Llama checkpoints for tests, editor end-to-end runs and demos (no hub, no downloads).

A 2-layer Llama with seeded random weights and a small tokenizer decodes a token in a few
milliseconds on a CPU, through the same transformers / peft / server code paths as a real
CodeLlama: its completions are nonsense, but everything around them is real.

- :func:`train_bpe_tokenizer` -- a byte-level BPE tokenizer trained on a few code snippets, with
  the special tokens a model family uses (StarCoder FIM tokens, ChatML, ...).
- :func:`tiny_llama` -- the random model, in memory, sized for any tokenizer (also a
  SentencePiece CodeLlama one).
- :func:`build_tiny_llama` -- tokenizer and model saved to a directory that
  :func:`model_runtime.loader.load_model` and ``from_pretrained`` accept.

*Endless* models have their output head steered (``endless=``) so that greedy decoding never
picks the end token: generation runs to ``max_new_tokens`` (or until cancelled), which makes
cancellation observable and ghost text deterministic. With two steered tokens it only ever emits
those two (their logits are opposite, one always wins). With one, such as ``"("``, it emits that
token where its logit is positive and token id 0 elsewhere (all other logits tie at zero): give
id 0 to a token that is not the end token (e.g. bos) to get a model that only writes invalid code.

Everything is seeded: the same arguments give the same files, so tests keep their meaning.
torch, tokenizers and transformers are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerBase, PreTrainedTokenizerFast
    from typing_extensions import Unpack

    from model_runtime.loader import LoadedModel

END_OF_TEXT = "<|endoftext|>"
"""The end (and begin) token of the StarCoder / SmolLM family."""
STARCODER_FIM = ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")
"""StarCoder-style FIM tokens, in the order most tests give them ids."""

_STEER_WEIGHTS = (10.0, -10.0)


class TinyLlamaOptions(TypedDict, total=False):
    """Keyword options of :func:`tiny_llama`, passed on by :func:`build_tiny_llama`."""

    seed: int
    hidden_size: int
    num_layers: int
    max_positions: int
    endless: Sequence[str]
    tie_word_embeddings: bool | None


def train_bpe_tokenizer(
    corpus: Sequence[str],
    *,
    specials: Sequence[str],
    bos: str = END_OF_TEXT,
    eos: str = END_OF_TEXT,
    pad: str | None = None,
    unk: str | None = None,
    extra_specials: Sequence[str] | None = None,
    vocab_size: int = 400,
    byte_alphabet: bool = True,
    chat_template: str | None = None,
) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (GPT-2 / StarCoder style) trained on ``corpus``.

    ``specials`` become the first ids, in that order; ``bos``, ``eos``, ``pad`` and ``unk``
    name their roles among them. ``extra_specials`` (the tokenizer's additional special tokens)
    defaults to the specials that play none of those roles. ``byte_alphabet`` seeds the
    vocabulary with all 256 byte symbols; without it only characters seen in ``corpus`` exist.
    ``chat_template`` (Jinja) is stored with the tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    roles = {"bos_token": bos, "eos_token": eos, "unk_token": unk, "pad_token": pad}
    missing = sorted({t for t in roles.values() if t is not None} - set(specials))
    if missing:
        raise ValueError(f"special tokens {missing} are not in specials={list(specials)}")
    if extra_specials is None:
        extra_specials = [t for t in specials if t not in roles.values()]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if byte_alphabet else [],
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        **{role: token for role, token in roles.items() if token is not None},
        additional_special_tokens=list(extra_specials) or None,
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def tiny_llama(
    tokenizer: PreTrainedTokenizerBase,
    *,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    max_positions: int = 4096,
    endless: Sequence[str] = (),
    tie_word_embeddings: bool | None = None,
) -> LlamaForCausalLM:
    """A random Llama (4 heads, 2 KV heads, MLP twice ``hidden_size``) for ``tokenizer``, in eval mode.

    The vocabulary size and the bos / eos / pad ids come from ``tokenizer``; weights are drawn
    after ``torch.manual_seed(seed)``. ``endless``: one or two tokens of ``tokenizer`` to steer
    greedy decoding to (see the module docstring for what it then emits). ``tie_word_embeddings``
    defaults to untied for endless models (steering the head must not touch the embeddings)
    and tied otherwise.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    steered = _steered_ids(tokenizer, endless)
    tie = not steered if tie_word_embeddings is None else tie_word_embeddings
    if steered and tie:
        raise ValueError("an endless model needs tie_word_embeddings=False")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=tie,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    if steered:
        # The final norm keeps only hidden dimension 0 and the head reads only that dimension:
        # the steered tokens' logits are +10 / -10 x that activation, every other logit is 0.
        with torch.no_grad():
            model.model.norm.weight.zero_()
            model.model.norm.weight[0] = 1.0
            model.lm_head.weight.zero_()
            for token_id, weight in zip(steered, _STEER_WEIGHTS, strict=False):
                model.lm_head.weight[token_id, 0] = weight
    model.eval()
    return model


def build_tiny_llama(
    out_dir: Path | str, *, tokenizer: PreTrainedTokenizerBase, **options: Unpack[TinyLlamaOptions]
) -> Path:
    """Save ``tokenizer`` and a :func:`tiny_llama` for it to ``out_dir`` (created); return the dir.

    ``options`` are those of :func:`tiny_llama` (seed, sizes, ``endless``, ...).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out)
    tiny_llama(tokenizer, **options).save_pretrained(out)
    return out


def in_memory(
    model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, *, model_id: str = "tiny"
) -> LoadedModel:
    """A :class:`~model_runtime.loader.LoadedModel` (CPU, fp32) around a model built in
    memory, without saving and loading it: for tests and benchmarks of the engine."""
    from model_runtime.fim import detect_template
    from model_runtime.loader import LoadedModel

    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        template=detect_template(tokenizer),
        model_id=model_id,
        adapter=None,
        device="cpu",
        dtype="float32",
        base_model=model,
        base_tokenizer=tokenizer,
        base_embedding_rows=len(tokenizer),
    )


def _steered_ids(tokenizer: PreTrainedTokenizerBase, tokens: Sequence[str]) -> list[int]:
    if isinstance(tokens, str):
        raise TypeError(f"endless takes a sequence of tokens, not the string {tokens!r}")
    if len(tokens) > len(_STEER_WEIGHTS):
        raise ValueError(f"endless takes at most {len(_STEER_WEIGHTS)} tokens, got {list(tokens)}")
    vocab = tokenizer.get_vocab()
    unknown = [t for t in tokens if t not in vocab]
    if unknown:
        raise ValueError(f"endless tokens {unknown} are not single tokens of this vocabulary")
    return [vocab[t] for t in tokens]
