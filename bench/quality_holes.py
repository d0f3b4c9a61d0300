"""The holes the quality benchmarks score: a real package's held-out files, cut the same way.

``bench/quality.py`` and ``bench/engine_quality.py`` take these options and this set-up, so that
their tables speak of the same holes: the source of an installed third-party package (default
``click``) copied into a temporary workspace and built into its dataset (``dataset.api.build``),
split by file as training splits it (``training.split.split_records``), holes cut from the
held-out files only (``training.holes.make_holes``).
"""

from __future__ import annotations

import argparse
import importlib
import shutil
from pathlib import Path
from typing import Any


def workspace_records(package: str, tmp: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Copy ``package``'s source into ``tmp`` and build its dataset; return (workspace, records)."""
    from dataset import api

    module = importlib.import_module(package)
    source = Path(module.__file__ or "").parent
    workspace = tmp / package
    shutil.copytree(source, workspace, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    api.build(workspace)
    return workspace, api.load_records(workspace)


def add_hole_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose the package, its held-out files and holes, and the answers'
    budget: the same in every quality bench, so that their holes can be the same."""
    parser.add_argument("--package", default="click")
    parser.add_argument("--holes", type=int, default=100)
    parser.add_argument("--val-fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=48)


def held_out_holes(
    args: argparse.Namespace, tmp: Path
) -> tuple[Path, list[dict[str, Any]], Any, list[Any]]:
    """The package's workspace in ``tmp``, its records, their split and the holes cut from the
    held-out files (the options of :func:`add_hole_options`)."""
    from training.holes import make_holes
    from training.split import split_records

    workspace, records = workspace_records(args.package, tmp)
    split = split_records(records, val_fraction=args.val_fraction)
    holes = make_holes(split.validation, max_holes=args.holes, seed=args.seed)
    return workspace, records, split, holes


def describe_holes(
    package: str, records: list[dict[str, Any]], split: Any, holes: list[Any]
) -> str:
    """The first words of a quality bench's header: the records, held-out files and holes."""
    n_line = sum(h.kind == "line" for h in holes)
    return (
        f"# {package}: {len(records)} records, held-out files "
        f"{sorted(split.validation_paths)}; {len(holes)} holes ({n_line} line, "
        f"{len(holes) - n_line} block)"
    )
