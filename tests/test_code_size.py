"""scripts/code_size.py: long functions and unexplained long modules are found."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_path = Path(__file__).resolve().parents[1] / "scripts" / "code_size.py"
_spec = importlib.util.spec_from_file_location("code_size", _path)
assert _spec and _spec.loader
code_size = importlib.util.module_from_spec(_spec)
sys.modules["code_size"] = code_size  # dataclasses look their module up
_spec.loader.exec_module(code_size)


def _write(path: Path, doc: str, body_lines: int, module_lines: int) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(body_lines))
    filler = "\n" * max(0, module_lines - body_lines - 4)
    path.write_text(f'"""{doc}"""\n\n\nclass C:\n  def long(self):\n{body}\n{filler}')


def test_a_long_method_and_a_long_module_are_named(tmp_path: Path) -> None:
    _write(tmp_path / "m.py", "A module.", 90, 450)
    found, lines, _ = code_size.offences(tmp_path / "m.py", tmp_path)
    assert lines >= 450
    assert {(o.name, o.limit) for o in found} == {("module", 400), ("C.long", 80)}


def test_a_size_paragraph_excuses_the_module_not_its_functions(tmp_path: Path) -> None:
    _write(tmp_path / "m.py", "A module.\n\nSize: one table, read as one.", 90, 450)
    found, _, _ = code_size.offences(tmp_path / "m.py", tmp_path)
    assert [o.name for o in found] == ["C.long"]


def test_short_code_passes(tmp_path: Path) -> None:
    _write(tmp_path / "m.py", "A module.", 70, 100)
    assert code_size.offences(tmp_path / "m.py", tmp_path)[0] == []
