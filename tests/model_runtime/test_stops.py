"""Unit tables for the pure stop rules and post-processing."""

from __future__ import annotations

import pytest

from model_runtime.stops import (
    bracket_imbalance,
    cut_repetition,
    postprocess,
    truncate_completion,
    wants_multiline,
)


@pytest.mark.parametrize(
    ("prefix", "suffix", "expected"),
    [
        ("x = foo(", ")\n", False),  # inside auto-closed brackets: complete the call
        ("print(value", ", 2)\n", False),  # mid-line: rest of line is code
        ("total = ", "\n", False),  # end of a non-opener line: one line
        ("def f(a):", "\n", True),  # after ':'
        ("if x {", "}\n", True),  # after '{' with auto-closed '}'
        ("def f(a):\n", "\nprint(1)", True),  # empty line
        ("def f(a):\n    ", "\n", True),  # whitespace-only line
        ("items = [", "\n", True),  # open bracket at end of line, nothing auto-closed
        ("items = [", "]\n", False),  # auto-closed: one line of items
        ("x.each do", "\n", True),  # Ruby block
        ("", "", True),  # empty document
    ],
)
def test_wants_multiline(prefix: str, suffix: str, expected: bool) -> None:
    assert wants_multiline(prefix, suffix) is expected


@pytest.mark.parametrize(
    ("text", "prefix", "multiline", "expected"),
    [
        # single line: cut at the first newline
        ("a + b\nc", "x = ", False, ("a + b", True)),
        ("a + b", "x = ", False, ("a + b", False)),
        ("\nfoo", "x = 1", False, ("", True)),
        # block after an opener on the cursor line: stop at the dedent
        ("\n    return 1\nprint(2)", "def f():", True, ("\n    return 1", True)),
        ("\n    a = 1\n\n    b = 2\n\ndef g", "def f():", True, ("\n    a = 1\n\n    b = 2", True)),
        # blank line followed by a dedent inside the block
        ("\n    if x:\n        y\n\n    z", "def f():", True, ("\n    if x:\n        y", True)),
        # ... but no blank line: a dedent that stays in the block continues
        (
            "\n    if x:\n        y\n    z",
            "def f():",
            True,
            ("\n    if x:\n        y\n    z", False),
        ),
        # cursor on the blank line under an opener: the first line must be indented
        ("```\nThis code", "def f(r):\n", True, ("", True)),
        ("    return r\n\nprint(f(2))", "def f(r):\n", True, ("    return r", True)),
        # top level on an empty line: blank line + dedent ends it, same-level lines continue
        ("x = 1\ny = 2", "import os\n", True, ("x = 1\ny = 2", False)),
        ("def g():\n    pass\n\nz = 3", "import os\n", True, ("def g():\n    pass", True)),
        # brace languages: the closing brace at the opener's indent ends the block
        ("\n  a();\n}\nint g", "int f() {", True, ("\n  a();\n}", True)),
        ("\n  a();\n}", "int f() {", True, ("\n  a();\n}", True)),
        # unfinished last line: undecided until its indentation is known
        ("\n    a = 1\n", "def f():", True, ("\n    a = 1\n", False)),
        ("\n    a = 1\n   ", "def f():", True, ("\n    a = 1\n   ", False)),
        # tabs count as 4 columns
        ("\n\treturn 1\nx", "def f():", True, ("\n\treturn 1", True)),
    ],
)
def test_truncate_completion(
    text: str, prefix: str, multiline: bool, expected: tuple[str, bool]
) -> None:
    assert truncate_completion(text, prefix, multiline=multiline) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x = " + "value_of(item) " * 4, ("x = value_of(item)", True)),
        ("money(1) + money(1) + money(1) + money(1) + money(1) + money(1", ("money(1)", True)),
        ("\n    x = 1\n    x = 1\n    x = 1\n    x = 1\n    x = 1\n", ("\n    x = 1", True)),
        # legitimate runs survive: numbers, separators, short repeats
        ("[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]", None),
        ("# ----------------------------------------------------------", None),
        ("a.b.b.b", None),
        ("valueselfselfselfselfselfselfselfselfselfself", None),  # unit under 5 chars
        ("return compute(left, right) + compute(right, left)", None),
    ],
)
def test_cut_repetition(text: str, expected: tuple[str, bool] | None) -> None:
    assert cut_repetition(text) == (expected or (text, False))


def test_truncate_stops_a_loop_in_either_mode() -> None:
    looping = "total(" + "item, " * 12
    assert truncate_completion(looping, "return ", multiline=False) == ("total(item", True)
    assert truncate_completion(looping, "def f():\n    ", multiline=True) == ("total(item", True)


@pytest.mark.parametrize(
    ("text", "prefix", "suffix", "expected"),
    [
        # closers the editor auto-inserted are not duplicated
        ("x))", "foo(bar(", ")\n", "x)"),
        ("x)", "foo(", ")\n", "x"),
        ("a, b])", "f([", "])\n", "a, b"),
        # ... but balanced brackets the completion needs are kept
        ("bar()", "foo(", ")\n", "bar()"),
        ("[1, 2]", "f(", ")\n", "[1, 2]"),
        # non-bracket repeats of the rest of the line
        (" > 0:", "if x", ":\n", " > 0"),
        ('hello"', 's = "', '"\n', "hello"),
        # multi-line text repeating the next line of the suffix is cut there
        ("\n    a = 1\n    return a", "def f():", "\n    return a\n", "\n    a = 1"),
        ("return total", "def f():\n    ", "\n    return total\n", ""),
        # a lone closing brace in the suffix is not "repeated text"
        ("\n  a();\n}", "int f() {", "}\n", "\n  a();\n"),
        # whitespace-only results are dropped; trailing blank lines of blocks too
        ("   ", "x = ", "\n", ""),
        ("\n    a = 1\n\n", "def f():", "\n", "\n    a = 1"),
        # a bracket the suffix's next line closes is not closed again at the end of the line
        (", app_name)", 'join(\n    expand("~/x")', "\n)\n", ", app_name"),
        ("b))", "f(\n    g(a, ", "\n)\n", "b)"),
        ("c) + 1)", "x = f(\n    y(", "\n    ).z\n", "c) + 1"),
        # ... but one it opened itself, or one still open after it, is kept
        ("g(b)", "f(\n    a, ", "\n)\n", "g(b)"),
        ("b)", "f(g(\n    a, ", "\n)\n", "b)"),
        ('b, ")"', "f(\n    a, ", "\n)\n", 'b, ")"'),  # a ")" in a string closes nothing
        ('b, ")")', "f(\n    a, ", "\n)\n", 'b, ")"'),
        # nothing to do
        ("a + b", "x = ", "\n", "a + b"),
        ("", "x", "", ""),
    ],
)
def test_postprocess(text: str, prefix: str, suffix: str, expected: str) -> None:
    assert postprocess(text, prefix, suffix) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("()", 0), ("(()", 1), ("())", 1), ("([)]", 2), ("", 0), ("{[()]}", 0), (")(", 2)],
)
def test_bracket_imbalance(text: str, expected: int) -> None:
    assert bracket_imbalance(text) == expected
