"""LoRA training memory and speed per configuration: dtype, LoRA targets, chunked vs full loss.

Each configuration trains the same model on the same packed rows (an installed package's source
treated as a workspace, same seed, so the same batches in the same order) for ``--steps``
optimizer steps through the real trainer (:func:`training.train.train`, no evaluation), each in
its **own child process** so its peak RSS is its own.  Children run interleaved (configuration
order A B C … and, with ``--rounds 2``, reversed on the second round) so a change in machine
load hits every configuration alike.  Per configuration it prints:

- ``tok/s``: real (non-pad) tokens per second over the steps after the first (warm-up) one;
- ``peak RSS``: the child's peak resident set over the whole run (model load included), and
  ``train peak``: the peak after the model is loaded and wrapped (``/proc/self/clear_refs``);
- ``loss@1`` (same weights, same batch: dtype error only) and the mean loss of the last steps;

and ratios to the first configuration.  Configurations (``--configs``, comma-separated):

==================  ============================================================================
``fp32-all-full``   fp32 weights, LoRA on every linear layer, full-logits loss (the old default)
``fp32-all``        fp32, all linear layers, chunked loss
``bf16-all``        bf16 weights (LoRA weights and optimizer in fp32), all linear, chunked
``bf16-attn``       bf16, LoRA on q/k/v/o only, chunked
``fp32-attn``       fp32, q/k/v/o only, chunked
``autocast-all``    fp32 weights under ``torch.autocast(bf16)`` (Accelerate mixed precision)
``bf16-all-full``   bf16, all linear, full-logits loss
``bf16-all-gc``     bf16, all linear, chunked, gradient checkpointing
==================  ============================================================================

    .venv/bin/python bench/train_memory.py [--model bundled:qwen2.5-coder-0.5b] [--steps 8] \
        [--batch-size 4] [--context-len 512] [--configs fp32-all,bf16-all,bf16-attn] [--rounds 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ATTENTION = "q_proj,k_proj,v_proj,o_proj"
CONFIGS: dict[str, dict[str, Any]] = {
    "fp32-all-full": {"dtype": "float32", "loss_chunk_tokens": 0},
    "fp32-all": {"dtype": "float32"},
    "bf16-all": {"dtype": "bfloat16"},
    "bf16-attn": {"dtype": "bfloat16", "target_modules": ATTENTION},
    "fp32-attn": {"dtype": "float32", "target_modules": ATTENTION},
    "autocast-all": {"dtype": "float32", "env": {"ACCELERATE_MIXED_PRECISION": "bf16"}},
    "bf16-all-full": {"dtype": "bfloat16", "loss_chunk_tokens": 0},
    "bf16-all-gc": {"dtype": "bfloat16", "gradient_checkpointing": True},
}


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset VmHWM (Linux ≥ 4.0); False when not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration in this process; return its figures."""
    from training.config import TrainConfig
    from training.train import train

    knobs = {k: v for k, v in CONFIGS[spec["config"]].items() if k != "env"}
    cfg = TrainConfig(
        output=spec["output"],
        dataset=spec["dataset"],
        base_model=spec["model"],
        context_len=spec["context_len"],
        batch_size=spec["batch_size"],
        max_steps=spec["steps"],
        val_fraction=0.0,
        eval=False,
        device="cpu",
        checkpoint_every=10**6,
        seed=0,
        **knobs,
    )
    marks: dict[str, Any] = {"step_times": [], "losses": [], "step_tokens": []}
    sampled = [0]
    stop = threading.Event()

    def sample() -> None:  # fallback peak when clear_refs is not available
        while not stop.wait(0.05):
            sampled[0] = max(sampled[0], _status_kb("VmRSS"))

    def sink(event: dict[str, Any]) -> None:
        now = time.monotonic()
        if event["event"] == "start":
            marks["rss_loaded_kb"] = _status_kb("VmRSS")
            marks["load_peak_kb"] = _status_kb("VmHWM")
            marks["reset"] = _reset_peak()
            sampled[0] = 0
            marks["t_start"] = now
        elif event["event"] == "step":
            marks["step_times"].append(now)
            marks["losses"].append(event["loss"])

    threading.Thread(target=sample, daemon=True).start()
    t0 = time.monotonic()
    result = train(cfg, progress_sink=sink)
    stop.set()
    if result.status.value != "success":
        return {"config": spec["config"], "error": result.error}
    run = json.loads(Path(spec["output"], "run.json").read_text())
    times = [marks["t_start"], *marks["step_times"]]
    per_step = [b - a for a, b in itertools.pairwise(times)]
    tokens_per_step = result.train_tokens / max(1, result.steps)
    timed = per_step[1:] or per_step
    train_peak = _status_kb("VmHWM") if marks.get("reset") else sampled[0]
    tail = marks["losses"][-3:]
    return {
        "config": spec["config"],
        "dtype": run["dtype"],
        "loss_chunk_tokens": run.get("loss_chunk_tokens"),
        "trainable_parameters": run["trainable_parameters"],
        "steps": result.steps,
        "seconds_per_step": round(statistics.mean(timed), 2),
        "tokens_per_s": round(tokens_per_step / statistics.mean(timed), 1),
        "peak_rss_mb": round(max(_status_kb("VmHWM"), marks["load_peak_kb"]) / 1024),
        "load_peak_mb": round(marks["load_peak_kb"] / 1024),
        "loaded_rss_mb": round(marks["rss_loaded_kb"] / 1024),
        "train_peak_mb": round(train_peak / 1024),
        "loss_first": marks["losses"][0],
        "loss_last3": round(statistics.mean(tail), 4),
        "losses": marks["losses"],
        "wall_s": round(time.monotonic() - t0, 1),
    }


def _speed_models(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """Per configuration: ``(prepared model, optimizer, knobs, autocast)``, in training mode."""
    import torch

    from training.config import TrainConfig
    from training.train import prepare_model

    models: dict[str, Any] = {}
    for name in names:
        knobs = {k: v for k, v in CONFIGS[name].items() if k != "env"}
        cfg = TrainConfig(
            output="unused", base_model=args.model, context_len=args.context_len, seed=0, **knobs
        )
        prepared = prepare_model(cfg, "cpu")
        prepared.model.train()
        params = [p for p in prepared.model.parameters() if p.requires_grad]
        autocast = "env" in CONFIGS[name]
        models[name] = (prepared, torch.optim.AdamW(params, lr=cfg.lr), knobs, autocast)
    return models


def _speed_step(model: tuple[Any, Any, dict[str, Any], bool], batch: Any, n_items: int) -> float:
    """One optimizer step of one configuration; returns the loss."""
    import contextlib

    import torch

    from training.loss import causal_lm_loss

    prepared, opt, knobs, autocast = model
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with ctx:
        loss = causal_lm_loss(
            prepared.model,
            batch,
            num_items=n_items,
            chunk_tokens=knobs.get("loss_chunk_tokens"),
        )
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return round(float(loss.detach()), 5)


def _speed_table(
    args: argparse.Namespace,
    names: list[str],
    times: dict[str, list[float]],
    losses: dict[str, list[float]],
    tokens: list[int],
    loads: list[float],
) -> None:
    """Print the in-process figures: tok/s and round-1 loss per configuration, ratio to the first."""
    skip = 1 if args.steps > 1 else 0  # the first round warms up kernels and allocators
    base = names[0]

    def tps(name: str) -> float:  # median over rounds: robust to a load spike in one round
        return statistics.median(
            t / s for t, s in zip(tokens[skip:], times[name][skip:], strict=True)
        )

    print(
        f"\nin-process interleaved, batch {args.batch_size} × {args.context_len}, "
        f"{args.steps} rounds (first skipped; tok/s = median over rounds), load average {min(loads):.2f}–{max(loads):.2f}"
    )
    print("| config | tok/s | ÷ " + base + " | median s/step | loss round 1 | Δ loss round 1 |")
    print("|---|---|---|---|---|---|")
    for name in names:
        med = statistics.median(times[name][skip:])
        delta = losses[name][0] - losses[base][0]
        print(
            f"| {name} | {tps(name):.0f} | {tps(name) / tps(base):.2f} | {med:.1f} | "
            f"{losses[name][0]:.4f} | {delta:+.4f} |"
        )


def speed(args: argparse.Namespace, names: list[str], dataset: Path) -> None:
    """All configurations in this process, one optimizer step each in turn, ``--steps`` rounds.

    Every round feeds the same batch to every configuration, so the timing is interleaved
    step by step (machine load hits all alike) and round 1's losses differ only by dtype.
    """
    from training.data import read_records
    from training.examples import build_examples
    from training.packing import collate, pack_sequences, plan_batches

    models = _speed_models(args, names)
    first = next(iter(models.values()))[0]
    records = [r for r in read_records(dataset) if r.get("content")]
    examples, _ = build_examples(
        records, first.tokenizer, first.template, context_len=args.context_len, seed=0
    )
    rows = pack_sequences([e.input_ids for e in examples], args.context_len)
    plan = plan_batches(rows, args.batch_size, seed=0)
    pad = int(first.tokenizer.pad_token_id)
    times: dict[str, list[float]] = {n: [] for n in names}
    losses: dict[str, list[float]] = {n: [] for n in names}
    tokens: list[int] = []
    loads = []
    for step in range(args.steps):
        picked = [rows[i] for i in plan[step % len(plan)]]
        batch = collate(picked, pad)
        n_items = sum(len(r) - len(r.doc_lengths) for r in picked)
        tokens.append(sum(len(r) for r in picked))
        order = names if step % 2 == 0 else names[::-1]
        for name in order:
            t0 = time.perf_counter()
            loss = _speed_step(models[name], batch, n_items)
            times[name].append(time.perf_counter() - t0)
            losses[name].append(loss)
        loads.append(os.getloadavg()[0])
        print(
            f"round {step + 1}: "
            + ", ".join(f"{n} {times[n][-1]:.1f}s loss {losses[n][-1]:.4f}" for n in names),
            flush=True,
        )
    _speed_table(args, names, times, losses, tokens, loads)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--model", default="bundled:qwen2.5-coder-0.5b")
    p.add_argument("--package", default="email", help="installed package used as the workspace")
    p.add_argument("--max-files", type=int, default=None)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--context-len", type=int, default=512)
    p.add_argument("--configs", default="fp32-all-full,fp32-all,bf16-all,bf16-attn,fp32-attn")
    p.add_argument("--rounds", type=int, default=1, help="2: run the configs again, reversed")
    p.add_argument("--threads", type=int, default=None, help="torch threads per child")
    p.add_argument(
        "--speed",
        action="store_true",
        help="tokens/s only: every config in this process, steps interleaved (no RSS figures)",
    )
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p


def _run_children(
    args: argparse.Namespace, names: list[str], dataset: Path, tmp: Path
) -> tuple[dict[str, list[dict[str, Any]]], list[float]]:
    """Each configuration (``--rounds`` times, interleaved) in its own child process; returns
    the results per configuration and the load average after each child."""
    order = [n for r in range(args.rounds) for n in (names if r % 2 == 0 else names[::-1])]
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    loads: list[float] = []
    for i, name in enumerate(order):
        spec = {
            "config": name,
            "model": args.model,
            "dataset": str(dataset),
            "output": str(tmp / f"run-{i}-{name}"),
            "steps": args.steps,
            "batch_size": args.batch_size,
            "context_len": args.context_len,
        }
        env = {**os.environ, **CONFIGS[name].get("env", {})}
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        lines = [ln[ln.index("RESULT ") :] for ln in proc.stdout.splitlines() if "RESULT " in ln]
        if not lines:
            print(f"{name}: child failed ({proc.returncode}): {proc.stderr[-1500:]}", flush=True)
            continue
        res = json.loads(lines[-1][len("RESULT ") :])
        loads.append(os.getloadavg()[0])
        results[name].append(res)
        print(f"{name}: {json.dumps({k: v for k, v in res.items() if k != 'losses'})}", flush=True)
    return results, loads


def _memory_table(results: dict[str, list[dict[str, Any]]], loads: list[float]) -> None:
    """Print the per-configuration figures (medians over rounds) and ratios to the first."""
    done = {n: r for n, r in results.items() if r and "error" not in r[0]}
    if not done:
        raise SystemExit("no configuration finished")
    base_name = next(iter(done))

    def med(name: str, key: str) -> float:
        return float(statistics.median(r[key] for r in done[name]))

    base_tps, base_rss = med(base_name, "tokens_per_s"), med(base_name, "peak_rss_mb")
    print(
        f"\nload average during the run: {min(loads):.2f}–{max(loads):.2f}; ratios vs {base_name}"
    )
    print(
        "| config | dtype | loss chunks | trainable | s/step | tok/s | ÷ base | peak RSS MB | "
        "÷ base | train peak MB | loss@1 | loss last 3 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, runs in done.items():
        r = runs[0]
        tps, rss = med(name, "tokens_per_s"), med(name, "peak_rss_mb")
        chunks = "full" if r["loss_chunk_tokens"] == 0 else "auto"
        print(
            f"| {name} | {r['dtype']} | {chunks} | {r['trainable_parameters'] / 1e6:.1f} M | "
            f"{med(name, 'seconds_per_step'):.1f} | {tps:.0f} | {tps / base_tps:.2f} | "
            f"{rss:.0f} | {rss / base_rss:.2f} | {med(name, 'train_peak_mb'):.0f} | "
            f"{r['loss_first']:.4f} | {r['loss_last3']:.4f} |"
        )


def main() -> None:
    args = _parser().parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return

    from bench.train_throughput import package_records, write_jsonl

    names = [c for c in args.configs.split(",") if c]
    unknown = [c for c in names if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configs {unknown}; known: {', '.join(CONFIGS)}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-mem-"))
    records = package_records(args.package, args.max_files)
    dataset = write_jsonl(records, tmp / "dataset.jsonl")
    print(
        f"# {args.model}, workspace '{args.package}' ({len(records)} files), batch "
        f"{args.batch_size} × context {args.context_len}, {args.steps} steps per config, "
        f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} (start)",
        flush=True,
    )
    if args.speed:
        speed(args, names, dataset)
        return
    results, loads = _run_children(args, names, dataset, tmp)
    _memory_table(results, loads)


if __name__ == "__main__":
    main()
