"""The code action listing as the server builds it (no model, no parsing beyond ast)."""

from __future__ import annotations

import time

import pytest
from lsprotocol import types

from lsp_server.refactor.listing import list_actions, selection_from, wants_refactors
from lsp_server.refactor.region import Selection

SOURCE = "def area(w, h):\n    return w * h\n"


def test_actions_carry_what_resolve_needs() -> None:
    actions = list_actions("file:///a.py", 3, SOURCE, "python", Selection(1, 4, 1, 4))
    assert [a.title.split(" (")[0] for a in actions] == [
        "Add docstring",
        "Add type hints",
        "Simplify",
        "Rename for clarity",
        "Refactor with instruction…",
    ]
    assert actions[0].data == {
        "uri": "file:///a.py",
        "range": [1, 4, 1, 4],
        "kind": "docstring",
        "version": 3,
    }
    instruction = actions[-1]
    assert instruction.data is None and instruction.command is not None
    assert instruction.command.command == "codellama.refactor"
    assert instruction.command.arguments == [
        {"uri": "file:///a.py", "range": [1, 4, 1, 4], "kind": "instruction", "version": 3}
    ]


def test_clients_without_edit_resolve_get_commands() -> None:
    actions = list_actions(
        "file:///a.py", 3, SOURCE, "python", Selection(1, 4, 1, 4), resolve_edits=False
    )
    assert all(a.command is not None and a.data is None for a in actions)


def test_listing_a_large_file_is_fast() -> None:
    source = "".join(f"def f{i}(x):\n    y = x + {i}\n    return y\n\n\n" for i in range(400))
    began = time.perf_counter()
    actions = list_actions("file:///a.py", 1, source, "python", Selection(1000, 4, 1000, 4))
    assert time.perf_counter() - began < 0.2  # uncached parse of 2,000 lines; the server caches
    assert actions[0].title == "Add docstring (function `f200`)"


@pytest.mark.parametrize(
    ("only", "wanted"),
    [
        (None, True),
        ([], True),
        (["refactor"], True),
        (["refactor.rewrite"], True),
        (["quickfix"], False),
        (["refactor.extract"], False),
        (["source"], False),
    ],
)
def test_only_filter(only: list[str] | None, wanted: bool) -> None:
    assert wants_refactors(only) == wanted


@pytest.mark.parametrize(
    "value",
    [
        [1, 2, 3, 4],
        {"start": {"line": 1, "character": 2}, "end": {"line": 3, "character": 4}},
        types.Range(
            start=types.Position(line=1, character=2), end=types.Position(line=3, character=4)
        ),
    ],
)
def test_selection_from(value: object) -> None:
    assert selection_from(value) == Selection(1, 2, 3, 4)


def test_selection_from_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="range must be"):
        selection_from("line 3")
