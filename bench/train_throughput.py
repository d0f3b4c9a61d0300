"""Training throughput: our packed LoRA loop vs a naive HF Trainer baseline, same run.

Both sides train the same model (bundled SmolLM2 by default, FIM tokens added), the same LoRA
config (r=16, alpha=32, q/k/v/o + MLP), on the same FIM examples built from the same records
(a standard-library package treated as a workspace), for one epoch with the same micro-batch
size.  The baseline pads every example to the context length (``padding="max_length"``, no
packing); ours packs examples into rows (position ids reset per document) and pads batches only
to their longest row.  The figure is real (non-pad) tokens per second of training time; the
ratio is ours ÷ baseline.

    .venv/bin/python bench/train_throughput.py [--package json] [--context-len 512] \
        [--batch-size 4] [--model bundled:smollm2-135m] [--max-files N]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def package_records(name: str, max_files: int | None = None) -> list[dict[str, Any]]:
    """Every ``.py`` file of an installed package as dataset records (workspace-relative paths)."""
    pkg = importlib.import_module(name)
    base = Path(pkg.__file__ or "").parent
    files = sorted(
        p for p in base.rglob("*.py") if "__pycache__" not in p.parts and "test" not in p.name
    )
    records = []
    for p in files[:max_files] if max_files else files:
        text = p.read_text(encoding="utf-8", errors="replace")
        rel = f"{name}/{p.relative_to(base).as_posix()}"
        records.append(
            {
                "file_path": rel,
                "content": text,
                "language": "python",
                "sha256": hashlib.sha256(text.encode()).hexdigest(),
                "size": len(text.encode()),
                "mtime": p.stat().st_mtime,
                "source": "file",
                "redactions": 0,
                "schema_version": 1,
            }
        )
    return records


def write_jsonl(records: list[dict[str, Any]], path: Path) -> Path:
    """Records → JSONL file."""
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


def run_ours(dataset: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Our trainer, one epoch, no evaluation."""
    from training.config import TrainConfig
    from training.train import train

    cfg = TrainConfig(
        output=str(out),
        dataset=str(dataset),
        base_model=args.model,
        context_len=args.context_len,
        batch_size=args.batch_size,
        epochs=1.0,
        max_steps=args.max_steps,
        val_fraction=0.0,
        eval=False,
        device="cpu",
        checkpoint_every=10**6,
        seed=0,
    )
    result = train(cfg, progress_sink=lambda _e: None)
    if result.status.value != "success":
        raise SystemExit(f"our trainer failed: {result.error}")
    run = json.loads((out / "run.json").read_text())
    return {
        "real_tokens": result.train_tokens,
        "tokens_per_s": result.tokens_per_s,
        "steps": result.steps,
        "padding_fraction": run["padding_fraction"],
        "rows": run["packed_rows"],
        "examples": run["examples"]["chunks"],
    }


def run_baseline(
    records: list[dict[str, Any]], args: argparse.Namespace, out: Path
) -> dict[str, Any]:
    """HF Trainer, each example padded to the context length, no packing."""
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from training.config import TrainConfig
    from training.examples import build_examples
    from training.train import prepare_model

    cfg = TrainConfig(output=str(out), base_model=args.model, context_len=args.context_len, seed=0)
    prepared = prepare_model(cfg, "cpu")
    examples, _ = build_examples(
        records, prepared.tokenizer, prepared.template, context_len=args.context_len, seed=0
    )
    if args.max_steps:  # a seeded random sample, so the padding share is representative
        import random

        examples = random.Random(0).sample(
            examples, min(len(examples), args.max_steps * args.batch_size)
        )
    pad = int(prepared.tokenizer.pad_token_id)
    L = args.context_len

    class Padded(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(examples)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            ids = examples[i].input_ids
            n = len(ids)
            return {
                "input_ids": torch.tensor(ids + [pad] * (L - n)),
                "attention_mask": torch.tensor([1] * n + [0] * (L - n)),
                "labels": torch.tensor(ids + [-100] * (L - n)),
            }

    class Timer(TrainerCallback):
        start = 0.0
        seconds = 0.0

        def on_train_begin(self, *a: Any, **k: Any) -> None:
            Timer.start = time.monotonic()

        def on_train_end(self, *a: Any, **k: Any) -> None:
            Timer.seconds = time.monotonic() - Timer.start

    targs = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=1,
        learning_rate=cfg.lr,
        lr_scheduler_type="cosine",
        warmup_steps=cfg.warmup_steps,
        logging_steps=10**6,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Trainer(model=prepared.model, args=targs, train_dataset=Padded(), callbacks=[Timer()])
    trainer.train()
    real = sum(len(e.input_ids) for e in examples)
    fed = len(examples) * L
    return {
        "real_tokens": real,
        "tokens_per_s": round(real / Timer.seconds, 1),
        "steps": (len(examples) + args.batch_size - 1) // args.batch_size,
        "padding_fraction": round(1 - real / fed, 4),
        "examples": len(examples),
        "seconds": round(Timer.seconds, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--package", default="json", help="stdlib package used as the workspace")
    p.add_argument("--model", default="bundled:smollm2-135m")
    p.add_argument("--context-len", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-files", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=None, help="cap steps (both sides)")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    records = package_records(args.package, args.max_files)
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    try:
        dataset = write_jsonl(records, tmp / "dataset.jsonl")
        print(
            f"# workspace: stdlib '{args.package}' ({len(records)} files), model {args.model}, "
            f"context {args.context_len}, batch {args.batch_size}, torch threads {torch.get_num_threads()}, "
            f"load {os.getloadavg()[0]:.1f}"
        )
        base = run_baseline(records, args, tmp / "baseline")
        print("baseline (HF Trainer, pad to max length):", json.dumps(base))
        ours = run_ours(dataset, args, tmp / "ours")
        print("ours (packed, custom loop):", json.dumps(ours))
        ratio = ours["tokens_per_s"] / base["tokens_per_s"]
        print(
            f"throughput: ours {ours['tokens_per_s']:.0f} real tok/s vs baseline "
            f"{base['tokens_per_s']:.0f} real tok/s → ratio {ratio:.2f}x; padding ours "
            f"{100 * ours['padding_fraction']:.2f}% vs baseline {100 * base['padding_fraction']:.1f}%"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
