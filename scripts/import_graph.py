"""The project's module import graph, and a check that it has no circle.

    python scripts/import_graph.py [--print]      (``make lint`` runs it)

Every ``import`` / ``from … import`` of the project's own packages counts, also those inside
function bodies (a lazy import still ties two modules together); those under ``if
TYPE_CHECKING:`` do not (they never run). Prints the graph with
``--print``; exits 1 and names the circle when there is one, or an import across packages that
:data:`ALLOWED` does not permit (``dataset`` and ``model_runtime`` import nothing of ours,
``training`` imports both, ``lsp_server`` all three).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("lsp_server", "training", "model_runtime", "dataset")
ALLOWED: dict[str, set[str]] = {
    "dataset": set(),
    "model_runtime": set(),
    "training": {"dataset", "model_runtime"},
    "lsp_server": {"dataset", "model_runtime", "training"},
}
"""Which other top-level packages each package may import (docs/architecture.md)."""


def module_name(path: Path) -> str:
    """``model_runtime/engine.py`` → ``model_runtime.engine`` (packages by ``__init__``)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except what is under ``if TYPE_CHECKING:`` (never imported)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
                continue
            todo.append(child)
    return out


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """The project modules ``path`` (module ``name``) imports, at any depth of its code."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    """Module → the project modules it imports."""
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    modules = set(files)
    return {name: imports_of(path, name, modules) for name, path in files.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle (``[a, b, …, a]``), ignoring a package importing its own submodules."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt.startswith(node + "."):  # package → its submodule (re-exports)
                continue
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    """Imports across packages that :data:`ALLOWED` does not permit (``a.x → b.y``)."""
    bad = []
    for name in sorted(edges):
        top = name.partition(".")[0]
        for target in sorted(edges[name]):
            other = target.partition(".")[0]
            if other != top and other not in ALLOWED.get(top, set()):
                bad.append(f"{name} → {target}")
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--print", action="store_true", help="print every module's imports")
    args = parser.parse_args(argv)
    edges = graph()
    if args.print:
        for name in sorted(edges):
            print(f"{name}: {', '.join(sorted(edges[name])) or '-'}")
    cycle = find_cycle(edges)
    if cycle:
        print("import circle: " + " → ".join(cycle), file=sys.stderr)
        return 1
    if bad := layer_violations(edges):
        print("imports against the package layers: " + "; ".join(bad), file=sys.stderr)
        return 1
    print(f"import graph: {len(edges)} modules, no circle, package layers kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
