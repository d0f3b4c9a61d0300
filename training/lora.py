"""The model side of a run: the base model with FIM tokens and LoRA, its optimizer and schedule.

:func:`prepare_model` loads the base model in the dtype the runtime loader would serve it in
(:func:`model_runtime.loader.torch_dtype`, the one dtype resolver), adds the StarCoder-style FIM
tokens to a tokenizer that has none (their embedding rows trained as PEFT *trainable tokens*)
and wraps the model with LoRA. :func:`make_optimizer` gives AdamW over the trainable
parameters with linear warm-up then cosine decay.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from training.data import TrainingError, resolve_base_model

if TYPE_CHECKING:
    from training.config import TrainConfig


@dataclass
class Prepared:
    """Model, tokenizer and template ready for LoRA training."""

    model: Any
    tokenizer: Any
    template: Any
    model_path: str
    added_tokens: list[str]
    trainable_token_ids: list[int]
    dtype: str = ""
    """Weight dtype of the base model (``float32``, ``bfloat16`` …)."""


def _torch_dtype(name: str, device: str, model: str = "") -> Any:
    """The training dtype: the loader's choice for serving ``model`` on ``device``.

    ``auto`` resolves exactly as the runtime loader does (bf16 on capable CUDA and on CPUs with
    native bf16, else fp16/fp32), so an adapter is trained on the weights it is served with.
    In bf16 the frozen base weights and activations are bf16 while PEFT keeps the LoRA weights
    (and so the optimizer) in fp32.
    """
    from model_runtime.loader import ModelLoadError, torch_dtype

    try:
        return torch_dtype(name, device, model)
    except ModelLoadError as exc:
        raise TrainingError(f"--dtype: {exc}") from None


def _add_fim_tokens(tokenizer: Any, template: Any) -> tuple[Any, list[str], list[int]]:
    """For a tokenizer without FIM tokens: add the StarCoder-style ones; returns the template
    to train with, the tokens added and the ids whose embedding rows are trained."""
    from model_runtime.fim import template_by_name

    if template.supports_fim:
        return template, [], []
    fim_tokens = list(template.fim_tokens)
    vocab = tokenizer.get_vocab()
    added = [t for t in fim_tokens if t not in vocab]
    if added:
        tokenizer.add_tokens(added, special_tokens=True)
    trainable_ids = sorted(int(tokenizer.convert_tokens_to_ids(t)) for t in fim_tokens)
    return template_by_name("starcoder", tokenizer), added, trainable_ids


def prepare_model(cfg: TrainConfig, device: str) -> Prepared:
    """Load the base model, add FIM tokens when its tokenizer has none, wrap it with LoRA."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from model_runtime.fim import detect_template
    from model_runtime.spec import resolve_model

    spec = resolve_base_model(cfg.base_model)
    dtype = _torch_dtype(cfg.dtype, device, spec)
    # A bundled model in the training dtype is mapped from its file, not cast while loading.
    path = resolve_model(spec, dtype=str(dtype).removeprefix("torch."))
    tokenizer: Any = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    template, added, trainable_ids = _add_fim_tokens(tokenizer, detect_template(tokenizer))
    model = AutoModelForCausalLM.from_pretrained(
        path,
        dtype=dtype,
        attn_implementation=cfg.attn_implementation,
        trust_remote_code=cfg.trust_remote_code,
    )
    rows = int(model.get_input_embeddings().weight.shape[0])  # type: ignore[index]
    if len(tokenizer) > rows:
        model.resize_token_embeddings(len(tokenizer))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.convert_ids_to_tokens(0)
    model.config.use_cache = False
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    torch.manual_seed(cfg.seed)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=_target_modules(model, cfg.target_modules),
        task_type="CAUSAL_LM",
        trainable_token_indices=(
            {_embedding_name(model): trainable_ids} if trainable_ids else None
        ),
    )
    peft_model = get_peft_model(model, lora)
    dtype_name = str(dtype).removeprefix("torch.")
    return Prepared(peft_model, tokenizer, template, spec, added, trainable_ids, dtype_name)


def _target_modules(model: Any, wanted: tuple[str, ...]) -> list[str] | str:
    import torch

    if wanted == ("all-linear",):
        return "all-linear"
    names = {
        n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
    }
    found = [w for w in wanted if w in names]
    if not found:
        raise TrainingError(
            f"none of --target-modules {','.join(wanted)} exist in this model; "
            f"its linear layers are: {', '.join(sorted(names))} (or use all-linear)"
        )
    return found


def _embedding_name(model: Any) -> str:
    emb = model.get_input_embeddings()
    for name, module in model.named_modules():
        if module is emb:
            return name.rsplit(".", 1)[-1]
    return "embed_tokens"


def make_optimizer(cfg: TrainConfig, model: Any, total_steps: int) -> tuple[Any, Any, int]:
    """AdamW over the trainable parameters, warm-up then cosine over ``total_steps``; returns
    the optimizer, the scheduler and the number of trainable parameters."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, min(cfg.warmup_steps, total_steps // 2), total_steps
    )
    return optimizer, scheduler, sum(p.numel() for p in params)


def loss_chunk_tokens(cfg: TrainConfig, model: Any) -> int | None:
    """Positions per loss chunk: ``None`` (auto size), or 0 for the model's full-logits loss."""
    from training.loss import supports_chunked_loss

    if cfg.loss_chunk_tokens == 0:
        return 0
    if not supports_chunked_loss(model):
        warnings.warn(
            "this model's forward has no logits_to_keep (or post-processes its logits): "
            "computing the loss from full logits (more memory)",
            stacklevel=2,
        )
        return 0
    return cfg.loss_chunk_tokens
