"""scripts/import_graph.py: the project's imports form no circle, and a circle is found."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"
_spec = importlib.util.spec_from_file_location("import_graph", _path)
assert _spec and _spec.loader
import_graph = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(import_graph)


def test_the_project_has_no_import_circle() -> None:
    edges = import_graph.graph()
    assert "training.evaluate" in edges and "training.data" in edges["training.evaluate"]
    assert import_graph.find_cycle(edges) is None
    assert import_graph.layer_violations(edges) == []


def test_an_import_against_the_layers_is_named() -> None:
    edges = {"model_runtime.engine": {"training.train"}, "training.train": {"dataset.api"}}
    assert import_graph.layer_violations(edges) == ["model_runtime.engine → training.train"]


def test_a_circle_through_lazy_imports_is_found_and_type_only_imports_are_not(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.py").write_text("def f():\n    from b import g\n")
    (tmp_path / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import c\nimport a\n"
    )
    (tmp_path / "c.py").write_text("import b\n")
    modules = {"a", "b", "c"}
    edges = {m: import_graph.imports_of(tmp_path / f"{m}.py", m, modules) for m in modules}
    assert edges == {"a": {"b"}, "b": {"a"}, "c": {"b"}}
    assert import_graph.find_cycle(edges) == ["a", "b", "a"]
