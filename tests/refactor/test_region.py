"""Region selection: selections widen to whole statements, empty selections pick the enclosing
function or class (Python) or block (other languages)."""

from __future__ import annotations

import pytest

from lsp_server.refactor.region import RegionError, Selection, select_region

SOURCE = '''\
import math


class Shape:
    """A shape."""

    @property
    def area(self):
        w = self.w
        return w * w

    def name(self):
        return "shape"


def total(shapes):
    result = 0
    for s in shapes:
        result += s.area
    return result
'''


def cursor(line: int, character: int = 4) -> Selection:
    return Selection(line, character, line, character)


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (cursor(8), (6, 10, "function", "area")),  # decorators included
        (cursor(6), (6, 10, "function", "area")),  # on the decorator
        (cursor(12), (11, 13, "function", "name")),
        (cursor(4), (3, 13, "class", "Shape")),  # class docstring line
        (cursor(10, 0), (3, 13, "class", "Shape")),  # blank line inside the class
        (cursor(18), (15, 20, "function", "total")),
        (Selection(17, 4, 18, 10), (17, 19, "selection", None)),  # widened to the whole `for`
        (Selection(16, 0, 17, 0), (16, 17, "selection", None)),  # end at column 0 is exclusive
        (Selection(16, 0, 18, 0), (16, 19, "selection", None)),  # the `for` is taken whole
        (Selection(15, 0, 20, 0), (15, 20, "function", "total")),  # exactly a def
        (Selection(0, 0, 0, 6), (0, 1, "selection", None)),
    ],
)
def test_python_regions(selection: Selection, expected: tuple[int, int, str, str | None]) -> None:
    region = select_region(SOURCE, selection, "python")
    assert (region.start_line, region.end_line, region.kind, region.name) == expected


def test_broken_python_uses_indentation() -> None:
    broken = "def ok():\n    return 1\n\ndef bad(x:\n    y = (\n    return y\n"
    region = select_region(broken, cursor(5), "python")
    assert (region.start_line, region.end_line, region.kind, region.name) == (
        3,
        6,
        "function",
        "bad",
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [(1, (0, 3)), (5, (4, 6))],
)
def test_other_languages_use_blocks(line: int, expected: tuple[int, int]) -> None:
    source = "function a() {\n  return 1;\n}\n\nconst b = 2;\nconst c = 3;\n"
    region = select_region(source, cursor(line, 1), "javascript")
    assert (region.start_line, region.end_line) == expected
    assert region.kind == "block"


@pytest.mark.parametrize(
    ("source", "selection", "message"),
    [
        ("", cursor(0), "empty"),
        ("x = 1\n\n\ny = 2\n", cursor(1, 0), "blank line"),
        ("x = 1\n\n\n\ny = 2\n", Selection(1, 0, 3, 0), "blank"),
    ],
)
def test_nothing_to_refactor(source: str, selection: Selection, message: str) -> None:
    with pytest.raises(RegionError, match=message):
        select_region(source, selection, "python")


def test_region_text_and_label() -> None:
    region = select_region(SOURCE, cursor(12), "python")
    assert region.text(SOURCE) == '    def name(self):\n        return "shape"\n'
    assert region.label == "function `name`"
