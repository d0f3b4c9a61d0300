"""Validation tables: what a rewrite must pass before it is offered."""

from __future__ import annotations

import pytest

from lsp_server.refactor.text import split_lines
from lsp_server.refactor.validate import scan_balance, validate

PY = """\
def helper(x):
    return x + 1


def main():
    return helper(2)
"""


def spans(old: str, new: str, start: int, end: int) -> tuple[tuple[int, int], tuple[int, int]]:
    delta = len(split_lines(new)) - len(split_lines(old))
    return (start, end), (start, end + delta)


@pytest.mark.parametrize(
    ("new_region", "reason"),
    [
        ('def helper(x):\n    """Add one."""\n    return x + 1\n', ""),
        ("def helper(x: int) -> int:\n    return x + 1\n", ""),
        ("def helper(x):\n    return x +\n", "no longer parses"),
        ("def helper(x)\n    return x + 1\n", "no longer parses"),
        ("def add_one(x):\n    return x + 1\n", "removed `helper`"),
        ("def helper(x):\n    return x + 1\n", "changed nothing"),
        # the name may move elsewhere in the region's scope without complaint
        ("helper = lambda x: x + 1\n", ""),
    ],
)
def test_python(new_region: str, reason: str) -> None:
    new = PY.replace("def helper(x):\n    return x + 1\n", new_region)
    verdict = validate(PY, new, "python", *spans(PY, new, 0, 2))
    assert verdict.ok == (reason == "")
    assert reason in verdict.reason


def test_python_method_used_as_attribute() -> None:
    source = "class A:\n    def go(self):\n        return 1\n\n\nA().go()\n"
    new = source.replace("def go(self)", "def run(self)")
    verdict = validate(source, new, "python", *spans(source, new, 1, 3))
    assert not verdict.ok and "`go`" in verdict.reason


def test_python_region_must_parse_even_if_file_did_not() -> None:
    source = "def f():\n    return 1\n\nx = (\n"
    new = "def f():\n    return (1\n\nx = (\n"
    verdict = validate(source, new, "python", *spans(source, new, 0, 2))
    assert not verdict.ok and "rewritten code does not parse" in verdict.reason


def test_python_local_rename_is_fine_when_outer_name_is_equal() -> None:
    source = "x = 3\n\ndef f(x):\n    y = x\n    return y\n\nprint(x)\n"
    new = source.replace("    y = x\n    return y\n", "    value = x\n    return value\n")
    assert validate(source, new, "python", *spans(source, new, 2, 5)).ok


@pytest.mark.parametrize(
    ("language", "old", "new", "ok"),
    [
        ("javascript", "f(a, [1, 2]);\n", "f(a, [1, 2, 3]);\n", True),
        ("javascript", "f(a, [1, 2]);\n", "f(a, [1, 2);\n", False),
        ("javascript", "f(a, [1, 2]);\n", "f(a, [1, 2]));\n", False),
        ("javascript", 'f("a");\n', 'f("a);\n', False),
        ("javascript", 'f("(");\n', 'g("(", 1);\n', True),  # brackets in strings ignored
        ("javascript", "f(1); // (\n", "g(1); // ((\n", True),  # and in comments
        ("javascript", "f(1); /* ( */\n", "g(1); /* [ */\n", True),
        ("go", "x := `a\nb`\n", "y := `a\nb`\n", True),
        ("rust", "fn f<'a>(x: &'a str) {}\n", "fn g<'a>(x: &'a str) {}\n", True),
        ("c", "int f() { return '{'; }\n", "int g() { return '{'; }\n", True),
        ("lua", "f({1, 2})\n", "f({1, 2)\n", False),
    ],
)
def test_balance(language: str, old: str, new: str, ok: bool) -> None:
    source = f"// head\n{old}// tail\n"
    rewritten = f"// head\n{new}// tail\n"
    end = 1 + len(split_lines(old))
    assert validate(source, rewritten, language, *spans(source, rewritten, 1, end)).ok == ok


def test_partial_selection_keeps_its_imbalance() -> None:
    source = "function f() {\n  return 1;\n}\n"
    assert validate(
        source, source.replace("function f() {", "function g() {"), "javascript", (0, 1), (0, 1)
    ).ok
    bad = source.replace("function f() {", "function g() {{")
    assert not validate(source, bad, "javascript", (0, 1), (0, 1)).ok


def test_scan_balance_state() -> None:
    state = scan_balance("f(a, [b", "javascript")
    assert (state.unclosed, state.unopened, state.mismatched) == ("([", "", False)
    assert scan_balance("a)]", "javascript").unopened == ")]"
    assert scan_balance("(]", "javascript").mismatched
    assert scan_balance("x = 'abc", "javascript").open_string
