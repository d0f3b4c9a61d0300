"""Unit tables for the server's pure parts: typed-through cache, positions, settings, stats."""

from __future__ import annotations

import threading
import time

import pytest
from lsprotocol import types

from lsp_server.features.completion import completion_items
from lsp_server.metrics import percentile
from lsp_server.settings import Settings, parse_settings
from lsp_server.text import cursor_context, looks_binary, offset_at
from lsp_server.typed_through import WINDOW, TypedThroughCache
from lsp_server.worker import ModelWorker

DOC = "def area(r):\n    "
SHOWN = "return 3.14 * r * r"


@pytest.mark.parametrize(
    ("typed", "suffix", "expected"),
    [
        ("", "", SHOWN),  # same context again: the whole completion
        ("r", "", SHOWN[1:]),
        ("return 3", "", SHOWN[8:]),
        ("return 3.14 * r * ", "", "r"),
        (SHOWN, "", None),  # everything typed: the model must say what comes next
        ("x", "", None),  # diverged
        ("retu", "\n# changed", None),  # text after the cursor changed
    ],
)
def test_typed_through_table(typed: str, suffix: str, expected: str | None) -> None:
    cache = TypedThroughCache()
    cache.put("u", DOC, len(DOC), SHOWN)
    text = DOC + typed + suffix
    assert cache.get("u", text, len(DOC) + len(typed)) == expected


def test_typed_through_checks_text_before_the_cursor() -> None:
    cache = TypedThroughCache()
    cache.put("u", DOC, len(DOC), SHOWN)
    edited = "def aria(r):\n    re"
    assert cache.get("u", edited, len(edited)) is None
    assert cache.get("other", DOC + "re", len(DOC) + 2) is None


def test_typed_through_is_fast_on_a_10_mb_document() -> None:
    big = "x = 1\n" * (10_000_000 // 6) + DOC
    cache = TypedThroughCache()
    cache.put("u", big, len(big), SHOWN)
    text = big + "retu"
    started = time.perf_counter()
    for _ in range(100):
        assert cache.get("u", text, len(text)) == SHOWN[4:]
    assert (time.perf_counter() - started) / 100 < 0.005
    assert len(big) > WINDOW


def test_typed_through_bounds_entries() -> None:
    cache = TypedThroughCache(per_document=2, documents=2)
    for i in range(3):
        cache.put(f"u{i}", DOC, len(DOC), SHOWN)
    assert cache.get("u0", DOC, len(DOC)) is None
    assert cache.get("u2", DOC, len(DOC)) == SHOWN
    cache.clear()
    assert cache.get("u2", DOC, len(DOC)) is None


@pytest.mark.parametrize(
    ("text", "line", "character", "encoding", "expected"),
    [
        ("abc\ndef", 1, 2, "utf-16", 6),
        ("abc\r\ndef", 1, 0, "utf-16", 5),
        ("abc\rdef", 1, 3, "utf-16", 7),
        ("abc\n", 1, 0, "utf-16", 4),
        ("abc", 0, 3, "utf-16", 3),
        ("abc", 0, 4, "utf-16", None),  # past the end of the line
        ("abc", 1, 0, "utf-16", None),  # past the last line
        ("abc", -1, 0, "utf-16", None),
        ("a😀b", 0, 3, "utf-16", 2),  # the emoji is 2 UTF-16 units
        ("a😀b", 0, 2, "utf-16", None),  # inside a surrogate pair
        ("a😀b", 0, 5, "utf-8", 2),
        ("a😀b", 0, 2, "utf-32", 2),
        ("é = 1", 0, 2, "utf-8", 1),
    ],
)
def test_offset_at(
    text: str, line: int, character: int, encoding: str, expected: int | None
) -> None:
    assert offset_at(text, line, character, encoding) == expected


def test_binary_detection() -> None:
    assert looks_binary("ab\x00cd")
    assert looks_binary("".join(chr(i % 8) for i in range(1000)))
    assert not looks_binary("def f():\n\treturn 1\n")
    assert not looks_binary("")


def test_cursor_context_windows_at_line_starts() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    offset = text.index("line 500")
    context = cursor_context(text, offset, window_chars=100)
    assert context.prefix.startswith("line ") and text[:offset].endswith(context.prefix)
    assert len(context.prefix) <= 100 and len(context.suffix) <= 100
    assert context.suffix.endswith("\n") and text[offset:].startswith(context.suffix)


@pytest.mark.parametrize(
    ("raw", "field", "value", "bad"),
    [
        ({"maxNewTokens": 12}, "max_new_tokens", 12, []),
        ({"codellama": {"maxNewTokens": 12}}, "max_new_tokens", 12, []),
        ({"maxNewTokens": "12"}, "max_new_tokens", 64, ["maxNewTokens"]),
        ({"maxNewTokens": 0}, "max_new_tokens", 64, ["maxNewTokens"]),
        ({"debounceMs": True}, "debounce_ms", 75, ["debounceMs"]),
        ({"device": "tpu"}, "device", "auto", ["device"]),
        ({"dtype": "bfloat16"}, "dtype", "bfloat16", []),
        ({"adapter": "  "}, "adapter", None, []),
        ({"adapter": None}, "adapter", None, []),
        ({"logLevel": "verbose"}, "log_level", "info", ["logLevel"]),
        ({"promptLookup": 4}, "prompt_lookup", 4, []),
        ({"model": 7}, "model", "", ["model"]),
    ],
)
def test_settings_table(raw: dict, field: str, value: object, bad: list[str]) -> None:
    settings, errors = parse_settings(raw)
    assert getattr(settings, field) == value
    assert [e.name for e in errors if not e.unknown] == bad
    for error in errors:
        assert error.name in str(error) and error.reason in str(error)


def test_settings_unknown_keys_and_garbage() -> None:
    settings, errors = parse_settings({"serverPath": "x"})
    assert settings == Settings() and errors[0].unknown
    settings, errors = parse_settings("nonsense")
    assert settings == Settings() and len(errors) == 1 and not errors[0].unknown


def test_every_setting_has_a_docstring() -> None:
    from lsp_server.settings import SETTINGS

    documented = {o.name: o.spec.help for o in SETTINGS}
    for name in Settings.__dataclass_fields__:  # the help text is the setting's docstring
        assert documented.get(name, "").strip().endswith("."), name


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0


def test_worker_skips_jobs_cancelled_before_they_start() -> None:
    worker = ModelWorker()
    gate = threading.Event()
    first = worker.submit(gate.wait, name="blocker")
    cancel = threading.Event()
    ran: list[str] = []
    skipped = worker.submit(lambda: ran.append("skipped"), cancel=cancel)
    cancel.set()
    gate.set()
    first.result(5)
    assert worker.submit(lambda: "after").result(5) == "after"
    assert skipped.cancelled() and ran == []
    failing = worker.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(5)
    assert worker.submit(lambda: "still alive").result(5) == "still alive"
    worker.stop()


def test_completion_items_label_first_line_insert_all() -> None:
    position = types.Position(line=3, character=7)
    (item,) = completion_items("urn a + b\nprint(a)", "    ret", position)
    assert item.label == "return a + b"
    assert item.text_edit is not None and item.text_edit.new_text == "return a + b\nprint(a)"
    assert item.text_edit.range.start == types.Position(line=3, character=4)
    assert completion_items("", "x", position) == []
