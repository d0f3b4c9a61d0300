"""The option sets of ``codellama-train`` and ``codellama-eval``: one typed dataclass each.

Every field is declared with :func:`training.options.option` (default, help, limits, argument
group, and the camelCase name under which the server's ``codellama.finetune`` /
``codellama.evaluate`` command accepts it). The CLI flags, the validation messages, the LSP
option → flag tables of :mod:`training.job` and the option tables in the docs are all derived
from these two classes (``tests/test_option_drift.py`` keeps the docs and clients in step).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field
from typing import Any

from training import options
from training.options import option

DEFAULT_TARGET_MODULES: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)

GATE_METRICS: tuple[str, ...] = ("exact_match", "edit_similarity", "identifier_em", "identifier_f1")
"""Metrics the promotion gate can compare (the evaluation report's columns)."""

_RUN, _DATA, _OPT, _LORA = "run", "data and FIM", "optimisation and budget", "LoRA"
_EVAL, _RT = "evaluation and promotion gate", "model runtime"
_SOURCE, _HOLES, _ENGINE = "data and model", "evaluation", "engine backend"


@dataclass
class TrainConfig:
    """Everything ``train()`` needs; the CLI flags are these names with dashes."""

    output: str = option(
        "",
        "Run directory (adapter, checkpoints, metadata, progress, loss curve, eval report).",
        group=_RUN,
    )
    workspace: str | None = option(
        None,
        "Workspace whose dataset (`.codellama/dataset.jsonl`) is used (synced first).",
        group=_RUN,
    )
    dataset: str | None = option(
        None, "Explicit `dataset.jsonl` (or its directory) instead of the workspace's.", group=_RUN
    )
    base_model: str = option(
        "auto",
        "Model spec: `auto` (CodeLlama-7B on CUDA, else bundled), `bundled:…`, hub id or dir.",
        group=_RUN,
    )
    resume: bool = option(
        False, "Continue from the newest checkpoint in the run directory.", group=_RUN
    )
    seed: int = option(
        0, "Seed for FIM draws, data order, LoRA init and dropout.", group=_RUN, lsp=True
    )

    context_len: int = option(
        512,
        "Tokens per packed row (chunks incl. path header and FIM tokens fit in it).",
        group=_DATA,
        minimum=64,
        lsp=True,
    )
    fim_rate: float = option(
        0.9,
        "Share of chunks turned into FIM examples.",
        group=_DATA,
        minimum=0,
        maximum=1,
        lsp=True,
    )
    spm_rate: float = option(
        0.5, "Share of FIM examples in SPM order (rest PSM).", group=_DATA, minimum=0, maximum=1
    )
    val_fraction: float = option(
        0.1,
        "Share of files (by path hash) held out for validation / evaluation.",
        group=_DATA,
        minimum=0,
        below=1,
        lsp=True,
    )

    batch_size: int = option(
        4, "Packed rows per micro-batch and process.", group=_OPT, minimum=1, lsp=True
    )
    grad_accum: int = option(
        1, "Micro-batches per optimizer step.", group=_OPT, minimum=1, lsp=True
    )
    lr: float = option(
        2e-4,
        "Peak learning rate (AdamW, linear warmup then cosine decay).",
        group=_OPT,
        above=0,
        lsp=True,
    )
    warmup_steps: int = option(5, "Linear warmup steps.", group=_OPT, minimum=0)
    weight_decay: float = option(0.0, "AdamW weight decay.", group=_OPT, minimum=0)
    epochs: float = option(
        1.0,
        "Passes over the training rows (`--max-steps` takes precedence when set).",
        group=_OPT,
        above=0,
        lsp=True,
    )
    max_steps: int | None = option(
        None, "Stop after this many optimizer steps.", group=_OPT, minimum=1, lsp=True
    )
    max_minutes: float | None = option(
        None,
        "Stop cleanly (and save the adapter) before this wall-clock budget is exceeded.",
        group=_OPT,
        above=0,
        lsp=True,
    )
    checkpoint_every: int = option(
        50,
        "Save a resumable checkpoint every N steps (and always on cancel/stop).",
        group=_OPT,
        minimum=1,
        lsp=True,
    )
    gradient_checkpointing: bool = option(
        True,
        "Recompute activations in the backward pass instead of keeping them: Qwen2.5-Coder-0.5B "
        "at 4 × 512 (bf16, LoRA on all linear layers) peaks at 4.4 GB instead of 11.0 GB for "
        "~14 % more time per step (`bench/train_memory.py`); `--no-gradient-checkpointing` "
        "keeps them.",
        group=_OPT,
    )
    loss_chunk_tokens: int | None = option(
        None,
        "Loss over label positions in chunks of N (`lm_head` recomputed per chunk in backward, "
        "full logits never built); unset: ~64 MB of fp32 logits per chunk; 0: full-logits loss.",
        group=_OPT,
        minimum=0,
        lsp=True,
    )

    lora_r: int = option(16, "LoRA rank.", group=_LORA, minimum=1, lsp=True)
    lora_alpha: int = option(32, "LoRA alpha (scaling = alpha / r).", group=_LORA, lsp=True)
    lora_dropout: float = option(0.05, "LoRA dropout.", group=_LORA, minimum=0, below=1)
    target_modules: tuple[str, ...] = option(
        DEFAULT_TARGET_MODULES,
        "Module names LoRA wraps (attention q/k/v/o and MLP), comma-separated; `all-linear` also accepted.",
        group=_LORA,
    )

    eval: bool = option(
        True,
        "Evaluate base (or `--served-adapter`) vs the new adapter on held-out files after training.",
        group=_EVAL,
        lsp="evaluate",
    )
    max_holes: int = option(
        60,
        "Evaluation holes (rest-of-line and ~20 % multi-line blocks).",
        group=_EVAL,
        minimum=1,
        lsp=True,
    )
    eval_max_new_tokens: int = option(
        48, "Generation budget per evaluation hole.", group=_EVAL, minimum=1, lsp=True
    )
    eval_max_minutes: float | None = option(
        None,
        "Time budget of the evaluation after training (unset: `--max-minutes`, so evaluating "
        "never takes longer than training was allowed to; holes left out are reported).",
        group=_EVAL,
        above=0,
        lsp=True,
    )
    repo_name: str = option(
        "",
        "Repository name in repository-context prompts (unset: the workspace folder's name, as the server uses).",
        group=_EVAL,
    )
    served_adapter: str | None = option(
        None,
        "Adapter currently served: the gate compares the new adapter against it (else the base).",
        group=_EVAL,
    )
    gate_metric: str = option(
        "exact_match",
        "Metric the promotion gate compares.",
        group=_EVAL,
        choices=GATE_METRICS,
        lsp=True,
    )
    gate_tolerance: float = option(
        0.0, "Promote if new ≥ served − tolerance (percentage points).", group=_EVAL, lsp=True
    )

    device: str = option(
        "auto",
        "`auto`, `cpu` or `cuda` (ignored under `accelerate launch`, which decides).",
        group=_RT,
        lsp=True,
    )
    dtype: str = option(
        "auto",
        "`auto` (the serving loader's choice for the model: bf16 on capable CUDA, else fp32 or native CPU bf16), `float32`, `bfloat16`, `float16`.",
        group=_RT,
        lsp=True,
    )
    attn_implementation: str = option(
        "sdpa",
        "`sdpa`, `eager` or `flash_attention_2` (all keep packed documents apart).",
        group=_RT,
    )
    trust_remote_code: bool = option(False, "Passed to `from_pretrained`.", group=_RT)

    extra: dict[str, Any] = field(default_factory=dict)
    """Free-form settings recorded in the run metadata (no flag)."""

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = tuple(s for s in self.target_modules.split(",") if s)
        else:
            self.target_modules = tuple(self.target_modules)
        options.check(self)
        if not self.target_modules:
            raise ValueError("--target-modules must name at least one module")

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


@dataclass
class EvalConfig:
    """What ``codellama-eval`` evaluates and how (its flags are these names with dashes)."""

    workspace: str | None = option(
        None, "Workspace whose dataset is used (synced first).", group=_SOURCE
    )
    dataset: str | None = option(
        None, "Explicit `dataset.jsonl` instead of the workspace's.", group=_SOURCE
    )
    base_model: str = option(
        "auto", "Model spec (`auto`, `bundled:…`, hub id, dir).", group=_SOURCE
    )
    adapter: str | None = option(
        None,
        "Adapter directory to compare with the base model (the server's command: default the served adapter, `none` for the base alone).",
        group=_SOURCE,
        lsp=True,
    )
    baseline_adapter: str | None = option(
        None, "Compare against this adapter instead of the base model.", group=_SOURCE
    )
    device: str = option("auto", "`auto`, `cpu` or `cuda`.", group=_SOURCE)

    max_holes: int = option(60, "Number of holes.", group=_HOLES, minimum=1, lsp=True)
    max_new_tokens: int = option(
        48,
        "Generation budget per line hole (twice that for block holes).",
        group=_HOLES,
        minimum=1,
        lsp=True,
    )
    seed: int = option(0, "Hole sampling seed.", group=_HOLES, lsp=True)
    max_minutes: float | None = option(
        None,
        "Time budget for scoring (half per side; fewer holes when it runs out).",
        group=_HOLES,
        above=0,
        lsp=True,
    )
    val_fraction: float = option(
        0.1, "Validation share (as in training).", group=_HOLES, minimum=0, below=1
    )
    all_files: bool = option(False, "Use every file, not only held-out ones.", group=_HOLES)
    repo_context: bool = option(
        True,
        "Snippets of other dataset files in the prompts, as the server sends them (`--no-repo-context` to compare without).",
        group=_HOLES,
    )
    repo_name: str = option(
        "",
        "Repository name in the context prompts (default: the workspace folder's name).",
        group=_HOLES,
    )
    context_tokens: int | None = option(
        None,
        "Prompt budget in tokens (unset: the server's default, 1536).",
        group=_HOLES,
        minimum=16,
    )
    token_healing: bool = option(
        True,
        "Token healing at the cursor, as the server does it (in process, and through a llama.cpp engine's grammar; vLLM and other engines get unhealed prompts).",
        group=_HOLES,
    )

    backend: str = option(
        "inprocess",
        "Where the completions come from: `inprocess` (transformers), `llama.cpp` (a managed llama.cpp server on the bundled model's GGUF; adapters converted to GGUF LoRA) or `openai` (the OpenAI-compatible server at `--endpoint`).",
        group=_ENGINE,
        choices=("inprocess", "llama.cpp", "openai"),
    )
    endpoint: str | None = option(
        None, "Base URL of the engine for `--backend openai`.", group=_ENGINE
    )
    engine_model: str = option(
        "",
        "Served model name for `--backend openai` (empty: the engine's first model).",
        group=_ENGINE,
    )
    api_key_env: str | None = option(
        None,
        "Environment variable holding the engine's API key (`--backend openai`; never logged).",
        group=_ENGINE,
    )
    quantize: str = option(
        "auto",
        "Weight format of the in-process model, as the server's `quantize` setting (`auto`: what the server picks by default).",
        group=_ENGINE,
        choices=("auto", "none", "int8", "int4"),
    )

    def __post_init__(self) -> None:
        options.check(self)
        if self.backend == "openai" and not self.endpoint:
            raise ValueError("--backend openai needs --endpoint URL")


def add_arguments(parser: argparse.ArgumentParser, *, skip: set[str] | None = None) -> None:
    """Add one ``--flag`` per :class:`TrainConfig` option (help text = its help)."""
    options.add_arguments(parser, TrainConfig, skip=frozenset(skip or ()))


def config_from_args(ns: argparse.Namespace) -> TrainConfig:
    """Build a validated config from parsed CLI arguments."""
    config: TrainConfig = options.from_namespace(TrainConfig, ns)
    return config
