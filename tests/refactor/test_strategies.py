"""Per-action strategies and the retry loop, driven by scripted model answers (no model)."""

from __future__ import annotations

import ast
from collections.abc import Iterable

import pytest

from lsp_server.refactor.actions import ACTIONS, action_by_kind
from lsp_server.refactor.plan import Answer, clean_docstring, parse_renames
from lsp_server.refactor.prompts import ModelPrompt, render_prompt
from lsp_server.refactor.region import RegionError, Selection, select_region
from lsp_server.refactor.service import RefactorOutcome, RefactorRequest, run_refactor

SOURCE = """\
import math


def area(width, height):
    if width < 0 or height < 0:
        raise ValueError("negative size")
    return width * height


class Circle:
    def __init__(self, r):
        self.r = r

    def grow(self, k, *, by=1.0):
        n = self.r * k + by
        return Circle(n)


print(area(2, 3), Circle(1).grow(2))
"""


class Script:
    """A fake model: returns the scripted answers in order and records the prompts."""

    def __init__(self, answers: Iterable[str | Answer]) -> None:
        self.answers = [a if isinstance(a, Answer) else Answer(a, True) for a in answers]
        self.prompts: list[ModelPrompt] = []

    def __call__(self, prompt: ModelPrompt) -> Answer:
        self.prompts.append(prompt)
        return self.answers.pop(0)


def refactor(
    kind: str,
    line: int,
    answers: Iterable[str | Answer],
    source: str = SOURCE,
    language: str = "python",
    instruction: str = "",
) -> tuple[RefactorOutcome, Script]:
    region = select_region(source, Selection(line, 4, line, 4), language)
    script = Script(answers)
    request = RefactorRequest(source, language, region, action_by_kind(kind), instruction)
    return run_refactor(request, script), script


def changed_lines(old: str, new: str) -> list[str]:
    import difflib

    return [
        line
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_docstring_is_inserted_under_the_signature() -> None:
    outcome, script = refactor("docstring", 4, ["Compute the area of a rectangle"])
    assert outcome.ok and outcome.new_source is not None
    assert changed_lines(SOURCE, outcome.new_source) == [
        '+    """Compute the area of a rectangle."""'
    ]
    assert script.prompts[0].prefill == '"""'
    function = ast.parse(outcome.new_source).body[1]
    assert ast.get_docstring(function) == "Compute the area of a rectangle."


def test_docstring_replaces_an_existing_one_and_documents_the_class_only() -> None:
    source = SOURCE.replace("class Circle:\n", 'class Circle:\n    """Old."""\n\n')
    outcome, script = refactor("docstring", 10, ["A circle with a radius.\nMore text here"], source)
    assert outcome.new_source is not None
    assert changed_lines(source, outcome.new_source) == [
        '-    """Old."""',
        '+    """A circle with a radius. More text here."""',
    ]
    assert len(script.prompts) == 1


def test_long_docstring_wraps() -> None:
    long = "Compute " + "the area of a very large rectangle " * 4
    outcome, _ = refactor("docstring", 4, [long])
    assert outcome.new_source is not None
    lines = changed_lines(SOURCE, outcome.new_source)
    assert len(lines) > 2 and lines[-1] == '+    """'
    assert all(len(line) <= 101 for line in lines)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("\nReturns the area.", "Returns the area."),
        ("returns the area", "Returns the area."),
        ("Docstring: Returns x. Then y. And z.", "Returns x. Then y."),
        ("`Return the path\\name`", "Return the path\\\\name."),
        ("def area(width, height) -> int: returns the area", "Returns the area."),
    ],
)
def test_clean_docstring(answer: str, expected: str) -> None:
    assert clean_docstring(answer) == expected


def test_bad_docstring_is_retried_with_feedback_then_refused() -> None:
    outcome, script = refactor("docstring", 4, ["", "def area(width, height):"])
    assert not outcome.ok and outcome.new_source is None
    assert outcome.message.startswith("No valid edit")
    assert outcome.attempts == 2 and len(script.prompts) == 2
    assert "rejected because the docstring was empty" in script.prompts[1].messages[-1]["content"]


def test_retry_succeeds() -> None:
    outcome, _ = refactor("docstring", 4, ["", "Compute the area."])
    assert (
        outcome.ok and outcome.attempts == 2 and outcome.rejections == ["the docstring was empty"]
    )


def test_type_hints_keep_parameters_and_reject_unknown_names() -> None:
    outcome, script = refactor("typeHints", 4, ["float, height: Number) -> float"])
    assert script.prompts[0].prefill.endswith("def area(width: ")
    assert outcome.new_source is not None
    assert changed_lines(SOURCE, outcome.new_source) == [
        "-def area(width, height):",
        "+def area(width: float, height) -> float:",
    ]


def test_type_hints_on_a_method_skip_self_and_keep_defaults() -> None:
    outcome, script = refactor("typeHints", 14, ["float, *, by: float = 2) -> Circle:"])
    assert script.prompts[0].prefill.endswith("def grow(self, k: ")
    assert outcome.new_source is not None
    assert changed_lines(SOURCE, outcome.new_source) == [
        "-    def grow(self, k, *, by=1.0):",
        "+    def grow(self, k: float, *, by: float = 1.0) -> Circle:",
    ]


@pytest.mark.parametrize(
    "answer",
    ["height, width) -> float", "int) -> int", "'float', height: 'int')", "3, height: 3)"],
)
def test_type_hints_that_change_or_add_nothing_are_refused(answer: str) -> None:
    outcome, _ = refactor("typeHints", 4, [answer, answer])
    assert not outcome.ok


def test_rename_uses_the_syntax_tree() -> None:
    outcome, script = refactor("rename", 14, ["factor\nn -> radius\nself -> me\nby -> x"])
    assert script.prompts[0].prefill == "k -> "
    assert outcome.new_source is not None
    assert changed_lines(SOURCE, outcome.new_source) == [
        "-    def grow(self, k, *, by=1.0):",
        "-        n = self.r * k + by",
        "-        return Circle(n)",
        "+    def grow(self, factor, *, by=1.0):",
        "+        radius = self.r * factor + by",
        "+        return Circle(radius)",
    ]


def test_rename_refuses_names_already_taken() -> None:
    outcome, _ = refactor("rename", 14, ["r\nn -> math", "r"])
    assert not outcome.ok and "no usable" in outcome.message


def test_rename_skips_parameters_passed_by_keyword_elsewhere() -> None:
    source = SOURCE.replace("print(area(2, 3)", "print(area(width=2, height=3)")
    outcome, _ = refactor("rename", 4, ["w_value\nheight -> h_value"] * 2, source)
    assert not outcome.ok and "no usable" in outcome.message


@pytest.mark.parametrize(
    ("parse_input", "pairs"),
    [
        ("a -> b\n- c => d\n1. `e` -> `f`\nnonsense", [("a", "b"), ("c", "d"), ("e", "f")]),
        ("x: count", [("x", "count")]),
    ],
)
def test_parse_renames(parse_input: str, pairs: list[tuple[str, str]]) -> None:
    assert parse_renames(parse_input) == pairs


def test_simplify_rewrites_and_reindents() -> None:
    answer = "def grow(self, k, *, by=1.0):\n    return Circle(self.r * k + by)\n"
    outcome, script = refactor("simplify", 14, [answer])
    assert script.prompts[0].prefill == "```python\n"
    assert (
        "    def grow(self, k" in script.prompts[0].messages[-1]["content"]
        or "def grow(self, k" in script.prompts[0].messages[-1]["content"]
    )
    assert outcome.new_source is not None
    assert changed_lines(SOURCE, outcome.new_source) == [
        "-        n = self.r * k + by",
        "-        return Circle(n)",
        "+        return Circle(self.r * k + by)",
    ]


@pytest.mark.parametrize(
    ("answers", "reason"),
    [
        (["def grow(self, k:\n    return 1\n"] * 2, "no longer parses"),
        (["def expand(self, k, *, by=1.0):\n    return 1\n"] * 2, "removed `grow`"),
        ([Answer("def grow(self, k, *, by=1.0):\n    n = (", False)] * 2, "cut off"),
        (
            [
                "    def grow(self, k, *, by=1.0):\n        n = self.r * k + by\n        return Circle(n)\n"
            ]
            * 2,
            "changed nothing",
        ),
    ],
)
def test_simplify_refuses_broken_code(answers: list[str | Answer], reason: str) -> None:
    outcome, _ = refactor("simplify", 14, answers)
    assert not outcome.ok and reason in outcome.message


def test_instruction_is_required_and_quoted() -> None:
    with pytest.raises(RegionError, match="instruction"):
        refactor("instruction", 4, [])
    outcome, script = refactor(
        "instruction", 4, ["def area(w, h):\n    return w * h\n"], instruction="drop the   check"
    )
    assert "drop the check" in script.prompts[0].messages[-1]["content"]
    assert outcome.ok


def test_other_languages_rewrite_with_balance_checks() -> None:
    source = "// util\nfunction add(a, b) {\n  return a + b;\n}\n"
    good = "/** Add two numbers. */\nfunction add(a, b) {\n  return a + b;\n}\n"
    outcome, script = refactor("docstring", 2, [good], source, "javascript")
    assert script.prompts[0].prefill == "```javascript\n"
    assert outcome.ok
    outcome, _ = refactor(
        "docstring", 2, ["function add(a, b) {\n  return (a + b;\n}\n"] * 2, source, "javascript"
    )
    assert not outcome.ok and "brackets" in outcome.message


def test_fully_annotated_function_needs_no_model() -> None:
    source = "def f(x: int) -> int:\n    return x\n"
    outcome, script = refactor("typeHints", 1, [], source)
    assert not outcome.ok and "already fully annotated" in outcome.message
    assert script.prompts == []


def test_every_action_has_a_unique_kind_and_unknown_kinds_are_named() -> None:
    assert len({a.kind for a in ACTIONS}) == len(ACTIONS) == 5
    with pytest.raises(ValueError, match="docstring"):
        action_by_kind("nope")


class _Templated:
    chat_template = "x"

    def apply_chat_template(self, messages: list[dict[str, str]], **kwargs: object) -> str:
        assert kwargs == {"tokenize": False, "add_generation_prompt": True}
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


class _Plain:
    chat_template = None


def test_render_prompt_uses_the_chat_template_when_present() -> None:
    _, script = refactor("docstring", 4, ["Area."])
    prompt = script.prompts[0]
    assert render_prompt(_Templated(), prompt).endswith('<assistant>"""')
    plain = render_prompt(_Plain(), prompt)
    assert "### Instruction" in plain and plain.endswith('### Response\n"""')


def test_python_docstring_by_rewrite_must_not_change_code() -> None:
    source = "x = 1\ny = 2\n"
    script_good = ['"""Two numbers."""\nx = 1\ny = 2\n']
    outcome, script = refactor("docstring", 0, script_good, source)
    assert script.prompts[0].prefill == "```python\n"  # no def here: the rewrite strategy
    assert outcome.ok
    outcome, _ = refactor("docstring", 0, ['"""Two."""\nx = 1\ny = 3\n'] * 2, source)
    assert not outcome.ok and "changed code" in outcome.message


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ('raise ValueError("negative size") return width * height', "repeated the code"),
        ("x = f(a[0], b[1]) * (c + d) / e", "contained code"),
    ],
)
def test_docstring_that_is_code_is_refused(answer: str, reason: str) -> None:
    outcome, _ = refactor("docstring", 4, [answer] * 2)
    assert not outcome.ok and reason in outcome.message
