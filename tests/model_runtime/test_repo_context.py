"""Repository context: the index, retrieval at the cursor, prompt assembly per family, anchors."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from model_runtime.engine import CompletionRequest, Engine, anchor_lines
from model_runtime.fim import detect_template, encode, encode_infill_text
from model_runtime.prompt import build_prompt, comment_header
from model_runtime.retrieval import (
    MAX_SIMILAR,
    RepoIndex,
    Snippet,
    index_records,
)
from model_runtime.snippets import LOCAL_WINDOW_CHARS

HELPER = (
    "def frobnicate_widget(widget, scale=2):\n"
    '    """Scale a widget."""\n'
    "    return widget.size * scale\n"
    "\n"
    "\n"
    "class Other:\n"
    "    pass\n"
)
MAIN = "from util import frobnicate_widget\n\n\ndef run(widget):\n    total = frobnicate_widget("


def _records(**files: str) -> list[dict[str, Any]]:
    return [
        {"file_path": path.replace("__", "/").replace("_py", ".py"), "content": text}
        for path, text in files.items()
    ]


def _index() -> RepoIndex:
    filler = "".join(f"def unrelated_{n}(x):\n    return x + {n}\n\n" for n in range(40))
    return index_records(
        [
            {"file_path": "util.py", "content": HELPER, "language": "python"},
            {"file_path": "main.py", "content": MAIN, "language": "python"},
            {"file_path": "lib/filler.py", "content": filler, "language": "python"},
        ],
        name="ws",
    )


def test_definition_of_a_name_used_near_the_cursor_comes_first() -> None:
    snippets = _index().retrieve("main.py", MAIN, "")
    assert snippets[0].path == "util.py"
    assert snippets[0].reason == "definition" and snippets[0].name == "frobnicate_widget"
    assert snippets[0].text.startswith("def frobnicate_widget(widget, scale=2):")
    assert "class Other" not in snippets[0].text  # the definition ends where it ends
    assert all(s.path != "main.py" for s in snippets)


def test_never_the_current_file_and_never_its_own_text() -> None:
    index = _index()
    # A copy of the cursor's own text in another file is "> 0.5 similar": dropped.
    index.set_file("copy.py", MAIN + ")\n")
    for s in index.retrieve("main.py", MAIN, ""):
        assert s.path not in {"main.py", "copy.py"}
    assert index.retrieve("util.py", HELPER, "") == [] or all(
        s.path != "util.py" for s in index.retrieve("util.py", HELPER, "")
    )


def test_edits_reindex_one_file_and_removal_forgets_it() -> None:
    index = _index()
    before = index.stats()
    index.set_file("util.py", HELPER.replace("frobnicate_widget", "polish_widget"))
    assert index.retrieve("main.py", MAIN, "")[0].reason != "definition" or (
        index.retrieve("main.py", MAIN, "")[0].name != "frobnicate_widget"
    )
    text = MAIN.replace("frobnicate_widget", "polish_widget")
    assert index.retrieve("main.py", text, "")[0].name == "polish_widget"
    index.remove_file("util.py")
    assert "util.py" not in index
    assert all(s.path != "util.py" for s in index.retrieve("main.py", text, ""))
    assert index.stats()["files"] == before["files"] - 1
    # Tombstones compact away; retrieval still finds the live chunks afterwards.
    for n in range(30):
        index.set_file("lib/filler.py", f"def unrelated_{n}(x):\n    return x\n" * 50)
    index.load(
        [{"file_path": "util.py", "content": HELPER}, {"file_path": "main.py", "content": MAIN}]
    )
    assert index.stats()["files"] == 2
    assert index.retrieve("main.py", MAIN, "")[0].path == "util.py"


def test_commit_records_and_empty_files_are_not_indexed() -> None:
    index = index_records(
        [
            {"file_path": "a.py", "content": "", "source": "file"},
            {"file_path": "commit:abc", "content": "fix\ndiff", "source": "commit"},
            {"file_path": "b.py", "content": "x = 1\n"},
        ]
    )
    assert index.paths() == ["b.py"]


def test_similar_windows_rank_by_bm25_one_per_file() -> None:
    index = index_records(
        [
            {
                "file_path": "a.py",
                "content": "def parse_tokens(stream):\n    return stream.split()\n",
            },
            {"file_path": "b.py", "content": "def render_page(page):\n    return page.html\n"},
        ]
    )
    snippets = index.retrieve("c.py", "tokens = parse_stream_tokens(stream)\n", "")
    assert [s.path for s in snippets][:1] == ["a.py"]
    assert len({s.path for s in snippets}) == len(snippets)


# -- prompt assembly, token for token ---------------------------------------------------------

SNIPPETS = [
    Snippet("util.py", "def helper(a):\n    return a + 1\n", 0, "definition"),
    Snippet("lib/b.py", "value = helper(2)\n", 4, "similar"),
]


def test_codellama_psm_puts_context_first_in_the_prefix_segment(codellama_tokenizer: Any) -> None:
    tok = codellama_tokenizer
    t = detect_template(tok)
    prompt = build_prompt(
        tok, t, path="m.py", prefix="x = help", suffix="\nprint(x)\n", snippets=SNIPPETS
    )
    # Most relevant last (nearest to the file); each behind its path comment header.
    context = encode(tok, comment_header("lib/b.py") + "value = helper(2)\n") + encode_infill_text(
        tok, comment_header("util.py") + "def helper(a):\n    return a + 1\n"
    )
    expected = [
        t.bos_id,
        t.prefix_id,
        *context,
        *encode_infill_text(tok, "# path: m.py\nx = help"),
        t.suffix_id,
        *encode_infill_text(tok, "\nprint(x)\n"),
        t.middle_id,
    ]
    assert prompt.input_ids == expected
    assert prompt.context is not None and prompt.context.sources == ["lib/b.py", "util.py"]


def test_codellama_spm_puts_context_before_the_fim_tokens(codellama_tokenizer: Any) -> None:
    tok = codellama_tokenizer
    t = detect_template(tok)
    prompt = build_prompt(
        tok, t, path="m.py", prefix="x = help", suffix="\n", snippets=SNIPPETS[:1], spm=True
    )
    context = encode(tok, comment_header("util.py") + "def helper(a):\n    return a + 1\n")
    body = t.encode_infill(tok, "# path: m.py\nx = help", "\n", spm=True)[1:]
    assert prompt.input_ids == [t.bos_id, *context, *body]


def test_without_snippets_the_prompt_is_unchanged(codellama_tokenizer: Any) -> None:
    tok = codellama_tokenizer
    t = detect_template(tok)
    plain = build_prompt(tok, t, path="m.py", prefix="x = 1\n", suffix="")
    assert plain.input_ids == t.encode_infill(tok, "# path: m.py\nx = 1\n", "")
    assert plain.context is None


@pytest.mark.parametrize("budget", [64, 128, 300, 1536])
@pytest.mark.parametrize("repo_tokens", [0, 16, 100, 384, 5000])
def test_budget_is_never_exceeded(codellama_tokenizer: Any, budget: int, repo_tokens: int) -> None:
    tok = codellama_tokenizer
    t = detect_template(tok)
    many = [
        Snippet(
            f"pkg/m{n}.py", "".join(f"item_{n}_{k} = value({k})\n" for k in range(40)), 0, "similar"
        )
        for n in range(6)
    ]
    prefix = "".join(f"result_{n} = compute({n})\n" for n in range(300))
    prompt = build_prompt(
        tok, t, path="m.py", prefix=prefix, suffix=prefix, context_tokens=budget,
        snippets=many, repo_context_tokens=repo_tokens,
    )  # fmt: skip
    assert len(prompt.input_ids) <= budget
    used = len(prompt.context.ids) if prompt.context is not None else 0
    assert used <= min(repo_tokens, budget // 2)
    if repo_tokens >= 100 and budget >= 300:
        assert prompt.context is not None and len(prompt.context.sources) >= 1


@pytest.mark.slow
def test_qwen_repository_format_with_real_special_token_ids() -> None:
    from transformers import AutoTokenizer

    from model_runtime.spec import QWEN_CODER_MODEL, resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(QWEN_CODER_MODEL))
    t = detect_template(tok)
    assert t.name == "qwen"
    prompt = build_prompt(
        tok, t, path="src/m.py", prefix="x = helper(", suffix="\n", snippets=SNIPPETS,
        repo_name="ws",
    )  # fmt: skip
    documented = (
        "<|repo_name|>ws\n"
        "<|file_sep|>lib/b.py\nvalue = helper(2)\n"
        "<|file_sep|>util.py\ndef helper(a):\n    return a + 1\n"
        "<|file_sep|>src/m.py\n"
        "<|fim_prefix|>x = helper(<|fim_suffix|>\n<|fim_middle|>"
    )
    assert prompt.input_ids == tok.encode(documented)
    ids = prompt.input_ids
    assert ids[0] == 151663  # <|repo_name|>
    assert ids.count(151664) == 3  # <|file_sep|>: two snippets + the current file
    assert [i for i in ids if i in (151659, 151661, 151660)] == [151659, 151661, 151660]
    assert prompt.header == ""  # the path is on the <|file_sep|> line


# -- the engine: context first, stable windows -------------------------------------------------

LONG = "".join(f"def function_{n}(a, b):\n    return a + b * {n}\n\n" for n in range(200))


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_moving_the_cursor_within_a_file_keeps_the_prompt_start(
    loaded_factory: Callable[..., Any],
) -> None:
    budget = 512
    step = anchor_lines(budget)
    engine = Engine(loaded_factory(), context_tokens=budget)
    lines = LONG.splitlines(keepends=True)
    prompts = []
    for line in range(300, 340):  # the cursor moves down line by line over 40 lines
        prefix, suffix = "".join(lines[:line]) + "    x", "".join(lines[line:])
        prompts.append(engine.prompt_for(CompletionRequest("m.py", prefix, suffix)))
        engine._build_prompt(CompletionRequest("m.py", prefix, suffix))  # as complete() does
        assert len(prompts[-1].input_ids) <= budget
    kept = [
        _common(a.input_ids, b.input_ids) >= len(a.input_ids) // 2
        for a, b in itertools.pairwise(prompts)
    ]
    # The window is re-cut about once per anchor step; every other move keeps the start.
    assert kept.count(False) <= 40 // step + 1
    for prompt in prompts:  # every window starts on an anchor line counted from the file start
        first_line = prompt.prefix[len(prompt.header) :].split("\n", 1)[0] + "\n"
        assert LONG.count("\n", 0, LONG.index(first_line)) % step == 0


def test_anchors_count_lines_from_the_file_start_not_the_window(
    loaded_factory: Callable[..., Any],
) -> None:
    engine = Engine(loaded_factory(), context_tokens=256)
    lines = LONG.splitlines(keepends=True)
    prefix = "".join(lines[:400]) + "    x"
    whole = engine.prompt_for(CompletionRequest("m.py", prefix, ""))
    # The same cursor with the prefix handed over as a window starting at line 37.
    window = CompletionRequest("m.py", "".join(lines[37:400]) + "    x", "", prefix_line=37)
    assert engine.prompt_for(window).input_ids == whole.input_ids


def test_moving_reuses_the_kv_cache(loaded_factory: Callable[..., Any]) -> None:
    engine = Engine(loaded_factory())  # the default budget: 1536 tokens, 32-line anchor step
    lines = LONG.splitlines(keepends=True)

    def at(line: int) -> Any:
        request = CompletionRequest("m.py", "".join(lines[:line]), "", max_new_tokens=1)
        return engine.complete(request)

    first = at(400)
    moves = [at(line) for line in (403, 399, 405, 401, 408)]
    assert first.prompt_tokens > 1000
    reused = [m.reused_tokens >= first.prompt_tokens // 2 for m in moves]
    assert reused.count(True) >= 4, [m.reused_tokens for m in moves]


def test_context_block_comes_first_and_stays_while_typing(
    loaded_factory: Callable[..., Any], codellama_tokenizer: Any
) -> None:
    engine = Engine(loaded_factory(), context_tokens=256)
    results = []
    for typed in ("", "h", "he", "hel"):
        request = CompletionRequest(
            "m.py", LONG + "x = " + typed, "", max_new_tokens=1, snippets=tuple(SNIPPETS),
            repo_context_tokens=64,
        )  # fmt: skip
        prompt = engine.prompt_for(request)
        t = engine.loaded.template
        assert prompt.input_ids[:2] == [t.bos_id, t.prefix_id]
        assert prompt.context is not None
        n = len(prompt.context.ids)
        assert prompt.input_ids[2 : 2 + n] == prompt.context.ids
        results.append(engine.complete(request))
    assert all(r.reused_tokens >= results[0].prompt_tokens - 8 for r in results[1:])


def test_evaluation_requests_get_what_the_server_would_send() -> None:
    from model_runtime.retrieval import with_repo_context

    index = _index()
    request = CompletionRequest("main.py", MAIN, ")\n")
    assert with_repo_context(request, None) is request
    with_context = with_repo_context(request, index)
    assert [s.path for s in with_context.snippets][:1] == ["util.py"]
    assert with_context.repo_name == "ws"
    assert all(s.path != "main.py" for s in with_context.snippets)


def test_definitions_out_of_the_prompts_sight_come_from_the_current_file_too() -> None:
    """A constant at the top of a long module, used near the cursor far below it, is out of the
    prompt window: its definition is a snippet. A name bound again near the cursor, or defined
    within sight, gets none; nor does the current file's text near the cursor."""
    filler = "".join(f"def helper_{n}(value):\n    return value * {n} + 1\n\n" for n in range(120))
    text = (
        "import os\n\nRETRY_LIMIT_SECONDS = 995\nSHADOWED_LIMIT = 3\n\n"
        + filler
        + "def run(client):\n    SHADOWED_LIMIT = 4\n    if client.wait(RETRY_LIMIT_SECONDS, SHADOWED_LIMIT) == "
    )
    assert len(text) > LOCAL_WINDOW_CHARS + 1000
    index = index_records([{"file_path": "pkg/net.py", "content": text, "language": "python"}])
    snippets = index.retrieve("pkg/net.py", text, "\n")
    mine = [s for s in snippets if s.path == "pkg/net.py"]
    assert [(s.reason, s.name, s.text) for s in mine] == [
        ("definition", "RETRY_LIMIT_SECONDS", "RETRY_LIMIT_SECONDS = 995\n")
    ]
    # The same cursor in a short file: everything is in sight, no snippet of its own.
    short = "RETRY_LIMIT_SECONDS = 995\n\ndef run(client):\n    client.wait(RETRY_LIMIT_SECONDS"
    index.set_file("pkg/short.py", short)
    assert all(s.path != "pkg/short.py" for s in index.retrieve("pkg/short.py", short, ""))


STORE = '''"""The store."""


class InventoryStore:
    """Items and their stock levels.

    Longer text that no outline needs.
    """

    # a comment
    currency: str = "EUR"

    def __init__(self) -> None:
        self._items: dict[str, int] = {}

    def get_item(
        self,
        sku: str,
    ) -> int:
        """Return the item with this SKU."""
        return self._items[sku]

    @property
    def size(self) -> int:
        return len(self._items)


def unrelated() -> None:
    pass
'''


def test_a_class_definition_is_its_outline() -> None:
    index = index_records([{"file_path": "inv/store.py", "content": STORE}])
    cursor = "from inv.store import InventoryStore\n\n\ndef f(s: InventoryStore) -> None:\n    s = "
    snippets = index.retrieve("inv/audit.py", cursor + "InventoryStore", "")
    assert snippets[0].reason == "definition" and snippets[0].name == "InventoryStore"
    assert snippets[0].text == (
        "class InventoryStore:\n"
        '    """Items and their stock levels. ..."""\n'
        '    currency: str = "EUR"\n'
        "    def __init__(self) -> None: ...\n"
        "    def get_item(self, sku: str) -> int: ...\n"
        "    @property\n"
        "    def size(self) -> int: ...\n"
    )


def test_the_type_of_the_object_before_the_dot_comes_first() -> None:
    index = index_records(
        [
            {"file_path": "inv/store.py", "content": STORE},
            {"file_path": "inv/log.py", "content": "def total(kind, sku):\n    return 0\n"},
        ]
    )
    cursor = (
        "from inv.store import InventoryStore\n\n\n"
        "def shipped(store: InventoryStore, sku: str) -> int:\n"
        "    units = total('shipped', sku)\n"
        "    item = store."
    )
    snippets = index.retrieve("inv/audit.py", cursor, "")
    assert [(s.name, s.path) for s in snippets[:2]] == [
        ("InventoryStore", "inv/store.py"),
        ("total", "inv/log.py"),
    ]
    assert "def get_item(self, sku: str) -> int: ..." in snippets[0].text
    # A name the cursor's own lines bind (units) looks up no definition elsewhere.
    index.set_file("inv/units.py", "units = 3\n")
    again = index.retrieve("inv/audit.py", cursor.replace("item = store.", "units"), "")
    assert all(s.name != "units" for s in again)


def test_similar_windows_are_capped_after_the_definitions() -> None:
    files = [
        {"file_path": f"m{n}.py", "content": f"def step_{n}(stream):\n    return stream.tokens\n"}
        for n in range(5)
    ]
    index = index_records(files)
    cursor = "tokens = stream.tokens\nmore = stream.tokens\n"
    assert len(index.retrieve("c.py", cursor, "")) == MAX_SIMILAR
    assert len(index.retrieve("c.py", cursor, "", max_similar=3)) == 3
