"""Chat-style generation for refactors: greedy, stop strings, and a cancel ``threading.Event``.

torch and transformers are imported inside the functions (the server must start without them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from lsp_server.refactor.plan import Answer
from lsp_server.refactor.prompts import ModelPrompt, render_prompt

MAX_PROMPT_TOKENS = 3072


class CancelFlag(Protocol):
    """Anything with ``is_set()`` (a ``threading.Event`` or a combination of them)."""

    def is_set(self) -> bool: ...


class GenerationCancelled(Exception):
    """The cancel event was set while generating."""


@dataclass(frozen=True)
class GenerationStats:
    """Figures for one model call."""

    prompt_tokens: int
    new_tokens: int
    latency_s: float


def generate_answer(
    model: Any,
    tokenizer: Any,
    prompt: ModelPrompt,
    *,
    cancel: CancelFlag | None = None,
    stats: list[GenerationStats] | None = None,
) -> Answer:
    """Run ``prompt`` greedily and return the text after the prefill, cut before any stop string.

    Raises ``GenerationCancelled`` within one decoding step of ``cancel`` being set.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    text = render_prompt(tokenizer, prompt)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    if ids.shape[1] > MAX_PROMPT_TOKENS:
        raise ValueError(
            f"the code is too long for the model ({ids.shape[1]} tokens): select less code"
        )
    device = next(model.parameters()).device
    ids = ids.to(device)
    start = ids.shape[1]
    stops = prompt.stop

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = cancel is not None and cancel.is_set()
            if not done and stops:
                tail = tokenizer.decode(input_ids[0, start:], skip_special_tokens=True)
                # Leading blank lines are not an answer yet ("\n\n" must not stop it empty).
                tail = tail.lstrip("\r\n")
                done = any(stop in tail for stop in stops)
            return torch.full(
                (input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device
            )

    if cancel is not None and cancel.is_set():
        raise GenerationCancelled
    began = time.perf_counter()
    eos = _end_ids(tokenizer)
    with torch.inference_mode():
        output = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=prompt.max_new_tokens,
            do_sample=False,
            stopping_criteria=StoppingCriteriaList([_Stop()]),
            eos_token_id=eos or None,
            pad_token_id=(eos[0] if eos else tokenizer.pad_token_id),
        )
    if cancel is not None and cancel.is_set():
        raise GenerationCancelled
    new_ids = output[0, start:].tolist()
    if stats is not None:
        stats.append(GenerationStats(start, len(new_ids), time.perf_counter() - began))
    finished = bool(new_ids) and new_ids[-1] in eos
    answer = tokenizer.decode(new_ids, skip_special_tokens=True).lstrip("\r\n")
    cut = min((answer.find(s) for s in stops if s in answer), default=-1)
    if cut >= 0:
        return Answer(answer[:cut], True)
    return Answer(answer, finished)


def _end_ids(tokenizer: Any) -> list[int]:
    """Token ids that end an assistant turn (``<|im_end|>``-style tokens and EOS)."""
    ids: list[int] = []
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<|endoftext|>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        unk = getattr(tokenizer, "unk_token_id", None)
        if isinstance(token_id, int) and token_id >= 0 and token_id != unk:
            ids.append(token_id)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids
