"""Training settings: one dataclass, a docstring per field, validation that names the flag."""

from __future__ import annotations

import argparse
import itertools
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

DEFAULT_TARGET_MODULES: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)


@dataclass
class TrainConfig:
    """Everything ``train()`` needs; the CLI flags are these names with dashes."""

    output: str = ""
    """Run directory (adapter, checkpoints, metadata, progress, loss curve, eval report)."""
    workspace: str | None = None
    """Workspace whose committed dataset (``.codellama/dataset.jsonl``) is used."""
    dataset: str | None = None
    """Explicit ``dataset.jsonl`` (or its directory) instead of the workspace's."""
    base_model: str = "auto"
    """Model spec: ``auto`` (CodeLlama-7B on CUDA, else bundled), ``bundled:…``, hub id or dir."""
    context_len: int = 512
    """Tokens per packed row (chunks incl. path header and FIM tokens fit in it)."""
    batch_size: int = 4
    """Packed rows per micro-batch and process."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    lr: float = 2e-4
    """Peak learning rate (AdamW, linear warmup then cosine decay)."""
    warmup_steps: int = 5
    """Linear warmup steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    epochs: float = 1.0
    """Passes over the training rows (``--max-steps`` takes precedence when set)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps."""
    max_minutes: float | None = None
    """Stop cleanly (and save the adapter) before this wall-clock budget is exceeded."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA alpha (scaling = alpha / r)."""
    lora_dropout: float = 0.05
    """LoRA dropout."""
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    """Module names LoRA wraps (attention q/k/v/o and MLP); ``all-linear`` also accepted."""
    fim_rate: float = 0.9
    """Share of chunks turned into FIM examples."""
    spm_rate: float = 0.5
    """Share of FIM examples in SPM order (rest PSM)."""
    val_fraction: float = 0.1
    """Share of files (by path hash) held out for validation / evaluation."""
    seed: int = 0
    """Seed for FIM draws, data order, LoRA init and dropout."""
    device: str = "auto"
    """``auto``, ``cpu`` or ``cuda`` (ignored under ``accelerate launch``, which decides)."""
    dtype: str = "auto"
    """``auto`` (bf16 on capable CUDA, else fp32), ``float32``, ``bfloat16``, ``float16``."""
    attn_implementation: str = "sdpa"
    """``sdpa``, ``eager`` or ``flash_attention_2`` (all keep packed documents apart)."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass instead of keeping them: Qwen2.5-Coder-0.5B at
    4 × 512 (bf16, LoRA on all linear layers) peaks at 4.4 GB instead of 11.0 GB for ~14 % more
    time per step (``bench/train_memory.py``); ``--no-gradient-checkpointing`` keeps them."""
    loss_chunk_tokens: int | None = None
    """Loss over label positions in chunks of N (``lm_head`` recomputed per chunk in backward,
    full logits never built); unset: ~64 MB of fp32 logits per chunk; 0: full-logits loss."""
    checkpoint_every: int = 50
    """Save a resumable checkpoint every N steps (and always on cancel/stop)."""
    resume: bool = False
    """Continue from the newest checkpoint in the run directory."""
    eval: bool = True
    """Evaluate base (or ``served_adapter``) vs the new adapter on held-out files after training."""
    max_holes: int = 60
    """Evaluation holes (rest-of-line and ~20 % multi-line blocks)."""
    eval_max_new_tokens: int = 48
    """Generation budget per evaluation hole."""
    eval_max_minutes: float | None = None
    """Time budget of the evaluation after training (unset: ``--max-minutes``, so evaluating
    never takes longer than training was allowed to; holes left out are reported)."""
    repo_name: str = ""
    """Repository name in repository-context prompts (unset: the workspace folder's name, as
    the server uses)."""
    served_adapter: str | None = None
    """Adapter currently served: the gate compares the new adapter against it (else the base)."""
    gate_metric: str = "exact_match"
    """Metric the promotion gate compares (``exact_match``, ``edit_similarity``, …)."""
    gate_tolerance: float = 0.0
    """Promote if new ≥ served − tolerance (percentage points)."""
    trust_remote_code: bool = False
    """Passed to ``from_pretrained``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form settings recorded in the run metadata."""

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = tuple(s for s in self.target_modules.split(",") if s)
        else:
            self.target_modules = tuple(self.target_modules)
        checks = [
            (self.context_len >= 64, "--context-len must be ≥ 64"),
            (self.batch_size >= 1, "--batch-size must be ≥ 1"),
            (self.grad_accum >= 1, "--grad-accum must be ≥ 1"),
            (self.lr > 0, "--lr must be > 0"),
            (self.epochs > 0, "--epochs must be > 0"),
            (self.max_steps is None or self.max_steps >= 1, "--max-steps must be ≥ 1"),
            (self.max_minutes is None or self.max_minutes > 0, "--max-minutes must be > 0"),
            (
                self.eval_max_minutes is None or self.eval_max_minutes > 0,
                "--eval-max-minutes must be > 0",
            ),
            (self.lora_r >= 1, "--lora-r must be ≥ 1"),
            (0.0 <= self.fim_rate <= 1.0, "--fim-rate must be in [0, 1]"),
            (0.0 <= self.spm_rate <= 1.0, "--spm-rate must be in [0, 1]"),
            (0.0 <= self.val_fraction < 1.0, "--val-fraction must be in [0, 1)"),
            (self.checkpoint_every >= 1, "--checkpoint-every must be ≥ 1"),
            (
                self.loss_chunk_tokens is None or self.loss_chunk_tokens >= 0,
                "--loss-chunk-tokens must be ≥ 0",
            ),
            (bool(self.target_modules), "--target-modules must name at least one module"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


def add_arguments(parser: argparse.ArgumentParser, *, skip: set[str] | None = None) -> None:
    """Add one ``--flag`` per :class:`TrainConfig` field (help text = the field docstring)."""
    docs = _field_docs()
    skip = skip or set()
    for f in fields(TrainConfig):
        if f.name in skip or f.name == "extra":
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        help_text = docs.get(f.name, "")
        if isinstance(default, bool):
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        elif f.name == "target_modules":
            parser.add_argument(flag, default=",".join(DEFAULT_TARGET_MODULES), help=help_text)
        else:
            annot = str(f.type)
            typ: Any = str
            if annot.startswith("int"):
                typ = int
            elif annot.startswith("float"):
                typ = float
            parser.add_argument(flag, type=typ, default=default, help=help_text)


def _field_docs() -> dict[str, str]:
    """Field docstrings parsed from this module's source (shown as ``--help`` text)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(TrainConfig))
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for prev, node in itertools.pairwise(body):
        if (
            isinstance(prev, ast.AnnAssign)
            and isinstance(prev.target, ast.Name)
            and isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
        ):
            docs[prev.target.id] = str(node.value.value).replace("%", "%%")
    return docs


def config_from_args(ns: argparse.Namespace) -> TrainConfig:
    """Build a validated config from parsed CLI arguments."""
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(ns).items() if k in names})
