"""Evaluate base vs adapter on held-out files: ``codellama-eval`` / ``python -m training.evaluate``.

Holes cut from the validation files (same stable split as training) are completed greedily by
the runtime's :class:`~model_runtime.engine.Engine` — the same code path the server uses — and
scored with exact match, edit similarity and identifier match. ``--backend llama.cpp|openai``
completes the same holes with the same prompts through an inference engine instead
(:mod:`training.eval_backends`). :func:`gate` decides whether a new adapter may replace the
one being served.

Size: the scoring loop, the two-sided comparison with its time budget, the gate, the report and
the ``codellama-eval`` command are one flow; the engines are in :mod:`training.eval_backends`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from training.config import GATE_METRICS, EvalConfig
from training.holes import Hole, make_holes
from training.metrics import score
from training.options import add_arguments, from_namespace


def run_holes(
    engine: Any,
    holes: Sequence[Hole],
    *,
    max_new_tokens: int = 48,
    cancel: Any = None,
    on_hole: Callable[[int, int], None] | None = None,
    deadline: float | None = None,
    index: Any = None,
    max_similar: int | None = None,
) -> list[str]:
    """Greedy completions for each hole (block holes get twice the token budget).

    With a ``deadline`` (``time.monotonic()`` value) no hole is started after it: the list may
    be shorter than ``holes``. With an ``index`` (:class:`model_runtime.retrieval.RepoIndex`)
    each prompt gets the repository context the server would send (never the hole's own file;
    ``max_similar``: a benchmark's other cap on BM25 windows, ``None`` the server's).
    """
    from model_runtime.engine import CompletionRequest
    from model_runtime.retrieval import with_repo_context

    preds: list[str] = []
    for i, h in enumerate(holes):
        if deadline is not None and time.monotonic() >= deadline:
            break
        block = h.kind == "block"
        req = CompletionRequest(
            path=h.path,
            prefix=h.prefix,
            suffix=h.suffix,
            max_new_tokens=max_new_tokens * (2 if block else 1),
            multiline=block,
        )
        request = with_repo_context(req, index, max_similar=max_similar)
        preds.append(engine.complete(request, cancel).text)
        if on_hole is not None:
            on_hole(i + 1, len(holes))
    return preds


def _scores(holes: Sequence[Hole], preds: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "all": score(zip(preds, [h.target for h in holes], strict=True)).as_dict()
    }
    for kind in ("line", "block"):
        pairs = [(p, h.target) for p, h in zip(preds, holes, strict=True) if h.kind == kind]
        out[kind] = score(pairs).as_dict()
    return out


def evaluate_engine(
    engine: Any,
    holes: Sequence[Hole],
    *,
    adapter: str | None,
    baseline_adapter: str | None = None,
    max_new_tokens: int = 48,
    on_hole: Callable[[int, int], None] | None = None,
    max_seconds: float | None = None,
    index: Any = None,
    keep_predictions: bool = False,
) -> dict[str, Any]:
    """Score ``baseline_adapter`` (None: base model) then ``adapter`` on the same holes.

    ``index``: a :class:`model_runtime.retrieval.RepoIndex` for repository context (both
    sides get the same snippets, as the server would send them); ``None`` for none.

    The engine ends up serving whatever it served before the call, also when scoring fails or
    is interrupted. ``on_hole(done, total)`` counts over both sides (base holes, then adapter
    holes). ``max_seconds``: the base side gets half the budget, the adapter side the rest;
    both are scored on the holes both sides finished (``report["budget_stopped"]``).
    """
    with _serving_back(engine):
        report: dict[str, Any] = {"holes": len(holes), "max_new_tokens": max_new_tokens}
        report["repo_context"] = index is not None
        t0 = time.monotonic()
        engine.set_adapter(baseline_adapter)
        sides = 2 if adapter is not None else 1

        def counted(side: int) -> Callable[[int, int], None] | None:
            """Per-side ``(done, total)`` as one count over every side's holes."""
            if on_hole is None:
                return None
            report_hole = on_hole
            return lambda done, total: report_hole(side * total + done, sides * total)

        end = None if max_seconds is None else t0 + max_seconds
        half = None if max_seconds is None else t0 + max_seconds / sides
        base_preds = run_holes(
            engine, holes, max_new_tokens=max_new_tokens, on_hole=counted(0), deadline=half,
            index=index,
        )  # fmt: skip
        if len(base_preds) < len(holes):
            holes = holes[: len(base_preds)]
            report.update(holes=len(holes), budget_stopped=True)
        report["base"] = {"adapter": baseline_adapter, **_scores(holes, base_preds)}
        report["base_seconds"] = round(time.monotonic() - t0, 2)
        if adapter is not None:
            t1 = time.monotonic()
            engine.set_adapter(adapter)
            new_preds = run_holes(
                engine, holes, max_new_tokens=max_new_tokens, on_hole=counted(1), deadline=end,
                index=index,
            )  # fmt: skip
            if len(new_preds) < len(holes):  # the adapter side ran out: score the common holes
                holes, base_preds = holes[: len(new_preds)], base_preds[: len(new_preds)]
                report.update(holes=len(holes), budget_stopped=True)
                report["base"] = {"adapter": baseline_adapter, **_scores(holes, base_preds)}
            report["adapter"] = {"adapter": adapter, **_scores(holes, new_preds)}
            report["adapter_seconds"] = round(time.monotonic() - t1, 2)
            report["delta"] = {
                k: round(report["adapter"]["all"][k] - report["base"]["all"][k], 2)
                for k in GATE_METRICS
            }
        else:
            new_preds = []
        report.update(_answers(holes, base_preds, new_preds, keep=keep_predictions))
        return report


@contextlib.contextmanager
def _serving_back(engine: Any) -> Iterator[None]:
    """Give ``engine`` back serving the adapter it served on entry, also after an error."""
    previous = engine.loaded.adapter
    try:
        yield
    finally:
        if engine.loaded.adapter != previous:
            engine.set_adapter(previous)


def _answers(
    holes: Sequence[Hole], base_preds: list[str], new_preds: list[str], *, keep: bool
) -> dict[str, Any]:
    """The report's answers: ``samples`` (the first 12 holes) and, with ``keep``,
    ``predictions`` (every answer)."""
    answers: dict[str, Any] = {}
    if keep:  # every answer, hole by hole (bench/engine_quality.py compares them)
        answers["predictions"] = {
            "base": base_preds,
            **({"adapter": new_preds} if new_preds else {}),
        }
    answers["samples"] = [
        {
            "path": h.path,
            "kind": h.kind,
            "target": h.target,
            "base": base_preds[i],
            **({"adapter": new_preds[i]} if new_preds else {}),
        }
        for i, h in enumerate(holes[:12])
    ]
    return answers


def evaluate_adapter(
    validation: Sequence[dict[str, Any]],
    *,
    base_model: str,
    adapter: str | None,
    baseline_adapter: str | None = None,
    max_holes: int = 60,
    max_new_tokens: int = 48,
    seed: int = 0,
    device: str = "auto",
    on_hole: Callable[[int, int], None] | None = None,
    max_minutes: float | None = None,
    context_records: Sequence[dict[str, Any]] | None = None,
    repo_name: str = "",
    backend: str = "inprocess",
    engine_options: dict[str, Any] | None = None,
    holes: Sequence[Hole] | None = None,
    keep_predictions: bool = False,
) -> dict[str, Any]:
    """Compare baseline vs ``adapter`` on the records, with the engine ``backend`` names.

    ``on_hole(done, total)`` is called after each completed hole, over both sides;
    ``max_minutes`` bounds the scoring (see :func:`evaluate_engine`). ``context_records``:
    the dataset's records to draw repository context from (every file but the hole's own, as
    the server does); ``None`` evaluates without repository context. ``repo_name``: the name the
    server gives the repository in those prompts (its workspace folder's name). ``backend`` and
    ``engine_options``: see :func:`training.eval_backends.eval_engine` (in-process by
    default). ``holes``: score exactly these instead of cutting them from ``validation``.
    ``keep_predictions``: also return every answer (``report["predictions"]``).
    """
    from model_runtime.retrieval import index_records
    from training.eval_backends import engine_errors, eval_engine

    if holes is None:
        holes = make_holes(validation, max_holes=max_holes, seed=seed)
    options = {"device": device, **(engine_options or {})}
    with eval_engine(base_model, backend=backend, **options) as engine:
        report = evaluate_engine(
            engine,
            holes,
            adapter=adapter,
            baseline_adapter=baseline_adapter,
            max_new_tokens=max_new_tokens,
            on_hole=on_hole,
            max_seconds=None if max_minutes is None else 60.0 * max_minutes,
            index=None
            if context_records is None
            else index_records(context_records, name=repo_name),
            keep_predictions=keep_predictions,
        )
        report.update(backend=backend, engine_errors=engine_errors(engine))
        report["context_tokens"] = engine.context_tokens
        report["quantize"] = getattr(engine.loaded, "quantize", "none")
        report["token_healing"] = bool(getattr(engine, "heals", engine.token_healing))
    report.update(base_model=base_model, files=len(validation), seed=seed)
    return report


def gate(
    report: dict[str, Any], *, metric: str = "exact_match", tolerance: float = 0.0
) -> dict[str, Any]:
    """Promote the new adapter only if ``metric`` is not worse than the served one (− tolerance)."""
    if metric not in GATE_METRICS:
        raise ValueError(f"gate metric must be one of {', '.join(GATE_METRICS)}, not {metric}")
    if "adapter" not in report or not report.get("holes"):
        return {"promote": False, "metric": metric, "reason": "no evaluation holes: not promoted"}
    new = float(report["adapter"]["all"][metric])
    served = float(report["base"]["all"][metric])
    what = "served adapter" if report["base"].get("adapter") else "base model"
    reason = f"{metric} {new:.1f} vs {served:.1f} for the {what}"
    promote = new >= served - tolerance
    if promote and new <= served:
        # Not better on the gate metric (a tie, or within tolerance): the other metrics decide,
        # so an adapter that keeps EM at 0 while its edit similarity halves is not promoted.
        for other in GATE_METRICS:
            if other == metric or other not in report["adapter"]["all"]:
                continue
            a, b = float(report["adapter"]["all"][other]), float(report["base"]["all"][other])
            if a < b - tolerance:
                promote = False
                reason += f", and {other} drops {a:.1f} vs {b:.1f}"
                break
    verdict = "promoted" if promote else "not promoted"
    return {
        "promote": promote,
        "metric": metric,
        "new": round(new, 2),
        "served": round(served, 2),
        "tolerance": tolerance,
        "reason": f"{reason}: {verdict}",
    }


def report_markdown(report: dict[str, Any]) -> str:
    """A small Markdown table of the report."""
    cols = [
        ("EM", "exact_match"),
        ("ES", "edit_similarity"),
        ("ID-EM", "identifier_em"),
        ("ID-F1", "identifier_f1"),
    ]
    lines = [
        f"# Evaluation: {report.get('base_model', '')}",
        "",
        f"{report.get('holes', 0)} holes from {report.get('files', '?')} held-out files "
        f"(seed {report.get('seed', 0)}, greedy, max {report.get('max_new_tokens')} new tokens, "
        f"repository context {'on' if report.get('repo_context') else 'off'}; backend "
        f"{report.get('backend', 'inprocess')}"
        + (
            f", {report['engine_errors']} failed engine requests"
            if report.get("engine_errors")
            else ""
        )
        + ").",
        "",
        "| model | subset | n | " + " | ".join(c for c, _ in cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for side in ("base", "adapter"):
        if side not in report:
            continue
        name = report[side].get("adapter") or "base model"
        for subset in ("all", "line", "block"):
            s = report[side][subset]
            vals = " | ".join(f"{s[k]:.1f}" for _, k in cols)
            lines.append(
                f"| {side} ({Path(name).name if side == 'adapter' else name}) | {subset} | {s['n']} | {vals} |"
            )
    if "gate" in report:
        lines += ["", f"Gate: {report['gate']['reason']}"]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], run_dir: str | Path) -> tuple[Path, Path]:
    """``eval.json`` and ``eval.md`` in the run directory."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    js, md = d / "eval.json", d / "eval.md"
    js.write_text(json.dumps(report, indent=2, default=str))
    md.write_text(report_markdown(report))
    return js, md


def validation_records(
    source: str, *, val_fraction: float = 0.1, all_files: bool = False
) -> list[dict[str, Any]]:
    """The held-out records of a workspace/dataset (the same split training uses)."""
    from training.data import read_records
    from training.split import split_records

    records = read_records(source)
    if all_files:
        return [r for r in records if r.get("source", "file") == "file"]
    return split_records(records, val_fraction=val_fraction).validation


def build_parser() -> argparse.ArgumentParser:
    """``codellama-eval`` arguments: one flag per :class:`~training.config.EvalConfig` option."""
    p = argparse.ArgumentParser(
        prog="codellama-eval", description=__doc__.splitlines()[0] if __doc__ else None
    )
    add_arguments(p, EvalConfig)
    out = p.add_argument_group("output")
    out.add_argument("--output", help="directory for eval.json / eval.md")
    out.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _progress_bar() -> tuple[Any, Callable[[int, int], None]]:
    """Holes done (both sides) with an ETA on stderr; off when stderr is not a terminal (the
    server's child, logs), where the JSON / the report is what is read."""
    from tqdm import tqdm

    bar = tqdm(total=None, unit="hole", file=sys.stderr, disable=None, desc="codellama-eval")

    def on_hole(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return bar, on_hole


def run(cfg: EvalConfig) -> dict[str, Any]:
    """Evaluate as ``cfg`` says (the dataset synced first); ``ValueError`` for a user error."""
    from model_runtime.retrieval import repo_name_for
    from training.data import read_records, resolve_base_model, sync_workspace_dataset

    source = cfg.dataset or cfg.workspace
    if not source:
        raise ValueError("give --workspace DIR or --dataset FILE")
    if not cfg.dataset and Path(source).is_dir():
        sync_workspace_dataset(source)
    try:
        val = validation_records(source, val_fraction=cfg.val_fraction, all_files=cfg.all_files)
    except FileNotFoundError as exc:
        raise ValueError(f"no dataset for {source}: run `codellama-dataset build` ({exc})") from exc
    if not val:
        raise ValueError("no held-out files; try --all-files")
    bar, on_hole = _progress_bar()
    try:
        report = evaluate_adapter(
            val,
            base_model=resolve_base_model(cfg.base_model),
            adapter=cfg.adapter,
            baseline_adapter=cfg.baseline_adapter,
            max_holes=cfg.max_holes,
            max_new_tokens=cfg.max_new_tokens,
            seed=cfg.seed,
            device=cfg.device,
            max_minutes=cfg.max_minutes,
            context_records=read_records(source) if cfg.repo_context else None,
            repo_name=cfg.repo_name or repo_name_for(source),
            on_hole=on_hole,
            backend=cfg.backend,
            engine_options=engine_options(cfg),
        )
    finally:
        bar.close()
    if cfg.adapter:
        report["gate"] = gate(report)
    return report


def engine_options(cfg: EvalConfig) -> dict[str, Any]:
    """The :func:`training.eval_backends.eval_engine` options of ``cfg`` (all but the backend)."""
    return {
        "context_tokens": cfg.context_tokens,
        "token_healing": cfg.token_healing,
        "endpoint": cfg.endpoint,
        "engine_model": cfg.engine_model,
        "api_key_env": cfg.api_key_env,
        "quantize": cfg.quantize,
    }


def main(argv: list[str] | None = None) -> int:
    """``codellama-eval``: base vs adapter on held-out files; ``--json`` prints one object."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg: EvalConfig = from_namespace(EvalConfig, args)
        if not (cfg.dataset or cfg.workspace):
            parser.error("give --workspace DIR or --dataset FILE")
        report = run(cfg)
    except (ValueError, RuntimeError) as exc:  # user errors; engine / adapter load failures
        print(f"codellama-eval: {exc}", file=sys.stderr)
        return 1
    if args.output:
        write_report(report, args.output)
    print(json.dumps(report, default=str) if args.json else report_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
