"""Which documents refactors may read, and the listing's bounded work (no model, no server)."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest
from lsprotocol import types

from lsp_server.refactor.access import MAX_REFACTOR_CHARS, size_refusal, workspace_refusal
from lsp_server.refactor.edits import apply_text_edits, line_edits
from lsp_server.refactor.listing import list_actions, selection_from
from lsp_server.refactor.region import Selection, local_tree, select_region


def test_workspace_documents_only(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "pkg").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("TOKEN = 1\n")
    (ws / "link.py").symlink_to(outside / "secret.py")
    (ws / "linked_dir").symlink_to(outside)
    roots = [str(ws)]
    assert workspace_refusal((ws / "pkg" / "a.py").as_uri(), roots) is None
    assert workspace_refusal(f"{ws.as_uri()}/pkg/../a.py", roots) is None
    assert workspace_refusal("untitled:Untitled-1", roots) is None  # editor-only text
    refused = {
        f"{ws.as_uri()}/../outside/secret.py": "outside the workspace",
        (ws / "link.py").as_uri(): "outside the workspace",
        f"{ws.as_uri()}/linked_dir/secret.py": "outside the workspace",
        "file:///etc/passwd": "outside the workspace",
        f"{tmp_path.as_uri()}/ws2/a.py": "outside the workspace",  # a sibling sharing the prefix
        "https://example.com/a.py": "not on https",
        "a.py": "not on scheme-less",
    }
    for uri, reason in refused.items():
        why = workspace_refusal(uri, roots)
        assert why is not None and reason in why, (uri, why)
        assert "secret" not in why and "passwd" not in why  # never names the file
    assert "open one" in (workspace_refusal((ws / "a.py").as_uri(), []) or "")


def test_size_limit_says_why() -> None:
    assert size_refusal("x" * MAX_REFACTOR_CHARS) is None
    why = size_refusal("x" * (MAX_REFACTOR_CHARS + 1))
    assert why is not None and f"{MAX_REFACTOR_CHARS:,}" in why


SOURCE = '''\
import math


@decorate
def first(x):
    if x:
        return 1
    else:
        return 2


class Shape:
    """Doc."""

    def area(self):
        return (
    1
        )

    def name(self):
        return "shape"


TEXT = """
def inside_a_string():
    pass
"""

try:
    import numpy
except ImportError:
    numpy = None


def last(shapes):
    return [s for s in shapes]
'''


@pytest.mark.parametrize("line", range(SOURCE.count("\n")))
def test_local_tree_picks_the_region_a_full_parse_picks(line: int) -> None:
    cursor = Selection(line, 0, line, 0)
    full = ast.parse(SOURCE)
    local = local_tree(SOURCE, line, line)
    assert local is not None
    try:
        expected = select_region(SOURCE, cursor, "python", full)
    except ValueError:
        expected = None
    try:
        got = select_region(SOURCE, cursor, "python", local, parse=False)
    except ValueError:
        got = None
    assert got == expected


def test_local_tree_parses_a_bounded_chunk() -> None:
    body = "".join(f"def f_{i}(x):\n    return x + 1\n\n" for i in range(200_000))  # 5.6 MB
    began = time.perf_counter()
    tree = local_tree(body, 300_001, 300_001)
    elapsed = time.perf_counter() - began
    assert tree is not None and len(tree.body) == 1
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef) and node.name == "f_100000"
    assert node.lineno == 300_001  # document line numbers (1-based)
    assert elapsed < 1.0  # splitting lines dominates; a full parse takes ~10 s and 1 GB
    huge = "class Big:\n" + "".join(
        f"    def m{i}(self):\n        return {i}\n" for i in range(5000)
    )
    assert local_tree(huge, 10, 10) is None  # over the budget: indentation decides instead


def test_listing_never_parses_the_whole_file() -> None:
    source = "".join(f"def f{i}(x):\n    y = x + {i}\n    return y\n\n\n" for i in range(20_000))
    timings = []
    for _ in range(5):
        began = time.perf_counter()
        actions = list_actions("file:///a.py", 1, source, "python", Selection(50_001, 4, 50_001, 4))
        timings.append(time.perf_counter() - began)
    assert actions[0].title == "Add docstring (function `f10000`)"
    assert min(timings) < 0.1, timings  # a whole-file parse of these 600 KB takes ~1 s


@pytest.mark.parametrize(
    "value",
    [
        [-1, 0, 0, 0],
        [0, 0, 2**31, 0],
        [True, 0, 0, 0],
        [1.5, 0, 2, 0],
        ["1", 0, 2, 0],
        [3, 0, 1, 0],  # end before start
        {"start": {"line": 0, "character": 0}},
        {"start": None, "end": None},
        None,
    ],
)
def test_bad_ranges_say_what_is_expected(value: object) -> None:
    with pytest.raises(ValueError, match="range must be an LSP range"):
        selection_from(value)


@pytest.mark.parametrize(("encoding", "column"), [("utf-8", 7), ("utf-16", 4), ("utf-32", 3)])
def test_edit_positions_follow_the_negotiated_encoding(encoding: str, column: int) -> None:
    old = "a = 1\nb = '😀é'"  # no final newline: the edit ends after "😀é'" on line 1
    new = "a = 2\nc = 3\n"
    edits = line_edits(old, new, encoding)
    last = max(edits, key=lambda e: (e.range.end.line, e.range.end.character))
    assert last.range.end == types.Position(line=1, character=len("b = '") + column)
    assert apply_text_edits(old, edits, encoding) == new


def test_list_actions_uses_document_line_numbers_after_a_local_parse() -> None:
    source = "x = 1\n" * 100 + "def g(a):\n    return a\n"
    actions = list_actions("file:///a.py", 1, source, "python", Selection(101, 2, 101, 2))
    assert actions[0].title == "Add docstring (function `g`)"
