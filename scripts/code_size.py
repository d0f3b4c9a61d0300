"""Size limits of the project's code: small modules and short functions, checked.

    python scripts/code_size.py [--list]          (``make lint`` and ``make test`` run it)

A module of the project's packages, scripts or benchmarks may have at most
:data:`MAX_MODULE_LINES` lines unless its docstring has a paragraph starting ``Size:`` that says
why it is one module; a function or method may have at most :data:`MAX_FUNCTION_LINES` lines
(decorators and docstring included), without exceptions. Exits 1 and lists every offender;
``--list`` also prints the longest modules and functions.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOTS = ("lsp_server", "training", "model_runtime", "dataset", "scripts", "bench")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
REASON_MARK = "Size:"


@dataclass(frozen=True)
class Offence:
    """One module or function over its limit."""

    path: str
    name: str
    lines: int
    limit: int

    def __str__(self) -> str:
        return f"{self.path}: {self.name} has {self.lines} lines (limit {self.limit})"


def python_files(root: Path = ROOT) -> list[Path]:
    """The checked files: every ``*.py`` under :data:`ROOTS`."""
    return sorted(p for r in ROOTS for p in (root / r).rglob("*.py") if p.is_file())


def has_size_reason(tree: ast.Module) -> bool:
    """Whether the module docstring has a ``Size:`` paragraph (why it stays one module)."""
    doc = ast.get_docstring(tree) or ""
    return any(line.strip().startswith(REASON_MARK) for line in doc.splitlines())


def function_lengths(tree: ast.AST) -> list[tuple[str, int]]:
    """``(qualified name, lines)`` of every function and method in ``tree``."""
    out: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                end = child.end_lineno or child.lineno
                out.append((prefix + child.name, end - first + 1))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def offences(path: Path, root: Path = ROOT) -> tuple[list[Offence], int, list[tuple[str, int]]]:
    """Offences of one file, its line count and its function lengths."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    rel = path.relative_to(root).as_posix()
    lines = len(source.splitlines())
    found: list[Offence] = []
    if lines > MAX_MODULE_LINES and not has_size_reason(tree):
        found.append(Offence(rel, "module", lines, MAX_MODULE_LINES))
    functions = function_lengths(tree)
    for name, n in functions:
        if n > MAX_FUNCTION_LINES:
            found.append(Offence(rel, name, n, MAX_FUNCTION_LINES))
    return found, lines, functions


def main(argv: list[str] | None = None) -> int:
    """Check every file; print offenders (and with ``--list`` the longest code)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="also print the longest code")
    args = parser.parse_args(argv)
    found: list[Offence] = []
    modules: list[tuple[int, str]] = []
    functions: list[tuple[int, str]] = []
    for path in python_files():
        bad, lines, fns = offences(path)
        found += bad
        rel = path.relative_to(ROOT).as_posix()
        modules.append((lines, rel))
        functions += [(n, f"{rel}:{name}") for name, n in fns]
    if args.list:
        print("longest modules:", *(f"  {n:5d} {p}" for n, p in sorted(modules)[-10:]), sep="\n")
        print(
            "longest functions:", *(f"  {n:5d} {p}" for n, p in sorted(functions)[-10:]), sep="\n"
        )
    for offence in found:
        print(offence, file=sys.stderr)
    if found:
        print(
            f"{len(found)} over the limits: split them (a module may instead say why it is one "
            f"module in a '{REASON_MARK}' paragraph of its docstring)",
            file=sys.stderr,
        )
        return 1
    print(f"code size ok: {len(modules)} modules, {len(functions)} functions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
