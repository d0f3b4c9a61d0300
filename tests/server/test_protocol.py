"""The protocol layer (issue 11, items 3-8): positions, document sync, framing, invalid
messages and params, lifecycle — unit tables for the pure parts, then the real server over
stdio driven byte by byte with :class:`lsp_server.wire.WireClient`."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from lsprotocol import converters, types
from pytest_lsp import client_capabilities

from lsp_server.documents import InvalidChange, apply_changes
from lsp_server.feature import Feature
from lsp_server.framing import ChunkQueue, Frame, FrameReader
from lsp_server.setup import InvalidParams, command_argument, create_server
from lsp_server.text import clamped_offset, offset_at, position_at, split_lines, units
from lsp_server.wire import WireClient, frame

REPRO = "first = 1\x0csecond = 2\nthird = 3\n"
NOT_A_MODEL = {"model": "/nonexistent/model", "watchDataset": False, "logLevel": "warning"}


# -- positions and document sync (items 3 and 5) -------------------------------------------------


@pytest.mark.parametrize("separator", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"])
def test_only_lsp_line_breaks_end_lines(separator: str) -> None:
    text = f"a{separator}b\nc\r\nd\re"
    assert split_lines(text) == [f"a{separator}b\n", "c\r\n", "d\r", "e"]
    assert offset_at(text, 1, 0) == 4
    assert offset_at(text, 3, 1) == len(text)


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [("a\r\nb", 2, None), ("a\r\r\nb", 2, 4), ("a\r\r\nb", 3, None), ("\r\n\r\n", 2, 4)],
)
def test_a_crlf_is_one_line_break(text: str, line: int, expected: int | None) -> None:
    assert offset_at(text, line, 0) == expected  # a regex walk must not split \r\n


def test_the_issue_reproducer_edit_lands_on_the_lsp_line() -> None:
    change = types.TextDocumentContentChangePartial(
        range=types.Range(types.Position(1, 0), types.Position(1, 0)), text="ZZ"
    )
    edited = apply_changes(REPRO, [change], "utf-16")
    assert edited == "first = 1\x0csecond = 2\nZZthird = 3\n"
    assert edited[offset_at(edited, 1, 0) : offset_at(edited, 1, 2)] == "ZZ"


@pytest.mark.parametrize(
    ("line", "character", "encoding", "expected"),
    [
        (0, 3, "utf-8", 2),  # "aé" is 3 UTF-8 bytes
        (0, 2, "utf-16", 2),
        (0, 2, "utf-32", 2),
        (0, 4, "utf-16", 3),  # after the emoji (2 UTF-16 units)
        (0, 7, "utf-8", 3),  # after the emoji (4 UTF-8 bytes)
        (0, 3, "utf-16", 2),  # inside the surrogate pair: clamped to the emoji's start
        (0, 99, "utf-16", 4),  # past the line end: the line end
        (9, 0, "utf-16", 7),  # past the last line: the end of the text
    ],
)
def test_clamped_offsets_follow_the_encoding(
    line: int, character: int, encoding: str, expected: int
) -> None:
    assert clamped_offset("aé😀b\nxy", line, character, encoding) == expected


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_position_round_trip(encoding: str) -> None:
    text = "aé😀\x0cb\r\nxy\rz\n\u2028q"
    for offset in range(len(text) + 1):
        if text[offset - 1 : offset + 1] == "\r\n":
            continue  # between \r and \n: not a position
        line, character = position_at(text, offset, encoding)
        assert offset_at(text, line, character, encoding) == offset, (offset, line, character)


def test_reversed_change_range_is_rejected_whole() -> None:
    changes = [
        types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(0, 0), types.Position(0, 0)), text="x"
        ),
        types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(1, 2), types.Position(0, 1)), text="y"
        ),
    ]
    with pytest.raises(InvalidChange, match="precedes"):
        apply_changes("abc\ndef\n", changes, "utf-16")


def test_position_conversion_is_fast_on_a_5_mb_non_ascii_line() -> None:
    line = "é" * 5_000_000
    started = time.perf_counter()
    for encoding in ("utf-8", "utf-16", "utf-32"):
        end = units(line, encoding)
        assert offset_at(line, 0, end, encoding) == len(line)
        assert clamped_offset(line, 0, end, encoding) == len(line)
    # pygls and the old helper walked the line in Python: ≈ 1 s per conversion.
    assert time.perf_counter() - started < 0.6


# -- framing (item 7) ----------------------------------------------------------------------------


async def _frames(data: bytes, *, chunk: int = 7, **kwargs: Any) -> list[Frame]:
    chunks = ChunkQueue(depth=10**6)
    for start in range(0, len(data), chunk):
        chunks.queue.put_nowait(data[start : start + chunk])
        chunks.slots.acquire()
    chunks.queue.put_nowait(b"")
    reader = FrameReader(chunks, stall_seconds=0.05, **kwargs)
    frames = []
    while (item := await reader.next_frame()) is not None:
        frames.append(item)
    return frames


def _body(n: int) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": n, "method": "shutdown"})


@pytest.mark.parametrize(
    "bad",
    [
        lambda b: f"content-length: {len(b)}\r\n\r\n{b}",  # lower-case header
        lambda b: f"Content-Length: {len(b)}\n\n{b}",  # LF-only header lines
        lambda b: f"Content-Length: {len(b) + 5}\r\n\r\n{b}",  # 5 bytes too long
        lambda b: f"Content-Length: {len(b) - 5}\r\n\r\n{b}",  # 5 bytes too short
        lambda b: f"Content-Type: x\r\nContent-Length: {len(b)}\r\n\r\n{b}",  # extra header
    ],
)
async def test_framing_faults_lose_no_message(bad: Any) -> None:
    good = [_body(1), _body(3)]
    data = frame(good[0]) + bad(_body(2)).encode() + frame(good[1])
    frames = await _frames(data)
    assert [f.data["id"] for f in frames] == [1, 2, 3]


async def test_a_length_too_long_for_the_last_message_is_recovered_after_a_stall() -> None:
    frames = await _frames(frame(_body(1)) + f"Content-Length: 500\r\n\r\n{_body(2)}".encode())
    assert [f.data["id"] for f in frames] == [1, 2]


async def test_garbage_resynchronises_on_the_next_header() -> None:
    data = b"garbage\r\n\r\n" + frame(b"{not json") + b"Content-Length: x\r\n\r\n" + frame(_body(7))
    frames = await _frames(data)
    assert [f.error is not None for f in frames] == [True, False]
    assert frames[0].error_code == -32700 and frames[-1].data["id"] == 7


async def test_oversized_message_is_skipped_and_answered_not_allocated() -> None:
    data = b"Content-Length: 1000000000000\r\n\r\n" + _body(5).encode() + frame(_body(6))
    frames = await _frames(data, max_message=1 << 20)
    assert frames[0].error_code == -32600 and frames[0].error_id == 5
    assert "exceeds" in (frames[0].error or "")
    assert frames[1].data["id"] == 6


# -- registrar: argument errors and hooks (item 6, 8) --------------------------------------------


@pytest.mark.parametrize("args", [([7],), ([[1]],), ([True],), ([{"a": 1}, 2],)])
def test_command_argument_errors_are_invalid_params(args: tuple[Any, ...]) -> None:
    with pytest.raises(InvalidParams, match="expected no argument or one JSON object") as info:
        command_argument(args[0], "codellama.test")
    assert info.value.code == -32602 and str(info.value).startswith("codellama.test: ")


class Folders(Feature):
    name = "folders"
    seen: ClassVar[list[Any]] = []

    def workspace_folders_changed(self, params: types.DidChangeWorkspaceFoldersParams) -> None:
        self.seen.append(params)


async def test_workspace_folder_changes_reach_features() -> None:
    server = create_server([Folders])
    params = types.DidChangeWorkspaceFoldersParams(
        event=types.WorkspaceFoldersChangeEvent(
            added=[types.WorkspaceFolder(uri="file:///new", name="new")], removed=[]
        )
    )
    await server.protocol.fm.features[types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS](params)
    assert Folders.seen == [params]


# -- the real server over stdio ------------------------------------------------------------------


def _capabilities(profile: str) -> dict[str, Any]:
    return dict(converters.get_converter().unstructure(client_capabilities(profile)))


@pytest_asyncio.fixture
async def wire(tmp_path: Path) -> AsyncIterator[WireClient]:
    client = WireClient(configuration=NOT_A_MODEL, cwd=tmp_path, stderr_path=tmp_path / "err")
    await client.start()
    yield client
    await client.kill()


async def _init(client: WireClient, profile: str, root: Path) -> dict[str, Any]:
    return await client.initialize(_capabilities(profile), root_uri=root.as_uri())


def _open(client: WireClient, uri: str, text: str, language: Any = "python") -> None:
    item = {"uri": uri, "languageId": language, "version": 1, "text": text}
    client.notify("textDocument/didOpen", {"textDocument": item})


def _change(client: WireClient, uri: str, version: int, *changes: Any) -> None:
    params = {"textDocument": {"uri": uri, "version": version}, "contentChanges": list(changes)}
    client.notify("textDocument/didChange", params)


def _edit(line: int, character: int, end_line: int, end_character: int, text: str) -> Any:
    start = {"line": line, "character": character}
    return {
        "range": {"start": start, "end": {"line": end_line, "character": end_character}},
        "text": text,
    }


async def _documents(client: WireClient) -> dict[str, Any]:
    response = await client.request(
        "workspace/executeCommand", {"command": "codellama.documents", "arguments": []}
    )
    return dict(response["result"])


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("profile", ["visual-studio-code", "neovim"])
async def test_document_sync_is_lsp_exact_in_the_negotiated_encoding(
    wire: WireClient, tmp_path: Path, profile: str
) -> None:
    result = await _init(wire, profile, tmp_path)
    encoding = "utf-8" if profile == "neovim" else "utf-16"  # Neovim offers utf-8 first
    assert result["result"]["capabilities"]["positionEncoding"] == encoding
    uri = (tmp_path / "a.py").as_uri()
    _open(wire, uri, REPRO)
    _change(wire, uri, 2, _edit(1, 0, 1, 0, "ZZ"))
    other = (tmp_path / "b.py").as_uri()
    _open(wire, other, "s = 'é😀'\n")
    after = len("s = 'é😀".encode("utf-8" if encoding == "utf-8" else "utf-16-le"))
    _change(wire, other, 2, _edit(0, after // (1 if encoding == "utf-8" else 2), 0, 99, "!"))
    state = await _documents(wire)
    assert state["positionEncoding"] == encoding
    assert state["documents"][uri]["sha256"] == _sha("first = 1\x0csecond = 2\nZZthird = 3\n")
    assert state["documents"][other]["sha256"] == _sha("s = 'é😀!\n")
    assert state["documents"][uri]["version"] == 2


async def test_bookkeeping_stays_bounded_over_a_thousand_changes(
    wire: WireClient, tmp_path: Path
) -> None:
    await _init(wire, "visual-studio-code", tmp_path)
    uri = (tmp_path / "a.py").as_uri()
    _open(wire, uri, "")
    before = await _documents(wire)
    for version in range(2, 1002):
        _change(wire, uri, version, _edit(0, 0, 0, 0, "x"))
    after = await _documents(wire)
    assert after["documents"][uri]["length"] == 1000
    # pygls kept one future per notification: 2 → 2,002 entries.
    assert after["pendingFutures"] <= before["pendingFutures"] + 2


BAD_PARAMS: list[Any] = [
    None,
    [],
    {"textDocument": {"uri": "U"}, "position": {"line": -1, "character": 0}},
    {"textDocument": {"uri": "U"}, "position": {"line": 2**31, "character": 0}},
    {
        "textDocument": {"uri": "U"},
        "position": {"line": 0, "character": 0},
        "context": {"triggerKind": 99},
    },
]


async def test_bad_params_get_invalid_params_and_no_popup(wire: WireClient, tmp_path: Path) -> None:
    await _init(wire, "visual-studio-code", tmp_path)
    uri = (tmp_path / "a.py").as_uri()
    _open(wire, uri, "x = 1\n")
    for params in BAD_PARAMS:
        params = json.loads(json.dumps(params).replace('"U"', json.dumps(uri)))
        if isinstance(params, dict):
            params.setdefault("context", {"triggerKind": 1})
        for method in ("textDocument/inlineCompletion", "textDocument/completion"):
            response = await wire.request(method, params, timeout=10)
            assert response["error"]["code"] == -32602, (method, params, response)
    # Notifications with bad params: no answer, nothing changes, no pop-up.
    wire.notify("textDocument/didChange", None)
    wire.notify("textDocument/didOpen", [])
    wire.notify(
        "textDocument/didChange",
        {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [_edit(0, 0, -1, 0, "!")]},
    )
    state = await _documents(wire)
    assert state["documents"][uri]["sha256"] == _sha("x = 1\n")
    assert wire.popups() == []


async def test_invalid_messages_get_json_rpc_errors(wire: WireClient, tmp_path: Path) -> None:
    await _init(wire, "visual-studio-code", tmp_path)
    status = {"command": "codellama.documents", "arguments": []}
    request = {"jsonrpc": "2.0", "method": "workspace/executeCommand", "params": status}
    wire.send([{**request, "id": 101}, {**request, "id": 102}])  # batch: unsupported in LSP
    wire.send({**request, "id": 103, "jsonrpc": "1.0"})
    wire.send({**request, "id": [104]})
    wire.send({**request, "id": 1.5})
    wire.send(42)
    wire.send([])
    wire.send_raw(frame(b'{"jsonrpc": "2.0", "id": 105, "meth'))
    wire.send({**request, "id": 106, "method": "no/such/method"})
    assert (await wire.request("workspace/executeCommand", status))["result"]["documents"] == {}
    codes = {i: wire.responses[i]["error"]["code"] for i in (101, 102, 103, 106)}
    assert codes == {101: -32600, 102: -32600, 103: -32600, 106: -32601}
    null_codes = sorted(e["error"]["code"] for e in wire.null_id_errors)
    assert null_codes == [-32700, -32600, -32600, -32600, -32600]
    assert all("id" in e and e["id"] is None for e in wire.null_id_errors)
    assert wire.popups() == []


@pytest.mark.parametrize(
    ("command", "arguments", "expected"),
    [
        ("codellama.useAdapter", "[7]", "useAdapter: expected no argument or one JSON object"),
        ("codellama.finetune", '[{"maxSteps": 1e400}]', "maxSteps"),
        ("codellama.evaluate", '[{"maxHoles": "1e3"}]', "maxHoles"),
        (
            "codellama.refactor",
            '[{"uri": "file:///x", "range": [0, 0, 0, 0], "kind": "nope"}]',
            "kind",
        ),
        (
            "codellama.refactor",
            '[{"uri": "file:///x", "range": "bad", "kind": "docstring"}]',
            "range",
        ),
        ("codellama.documents", '[{"uri": 3}]', "uri must be a string"),
    ],
)
async def test_command_argument_errors_say_what_is_expected(
    wire: WireClient, tmp_path: Path, command: str, arguments: str, expected: str
) -> None:
    await _init(wire, "visual-studio-code", tmp_path)
    body = f'{{"jsonrpc": "2.0", "id": 7, "method": "workspace/executeCommand", "params": {{"command": "{command}", "arguments": {arguments}}}}}'
    future = wire.expect(7)
    wire.send_raw(frame(body))
    error = (await asyncio.wait_for(future, 30))["error"]
    assert error["code"] == -32602 and expected in error["message"], error
    assert "traceback" not in json.dumps(error).lower()
    assert wire.popups() == []


async def test_framing_faults_on_the_wire_leave_the_server_listening(
    wire: WireClient, tmp_path: Path
) -> None:
    await _init(wire, "visual-studio-code", tmp_path)
    params = {"command": "codellama.documents", "arguments": []}

    def body(n: int) -> str:
        return json.dumps(
            {"jsonrpc": "2.0", "id": n, "method": "workspace/executeCommand", "params": params}
        )

    futures = [wire.expect(n) for n in range(201, 207)]
    wire.send_raw(f"content-length: {len(body(201))}\r\n\r\n{body(201)}".encode())
    wire.send_raw(f"Content-Length: {len(body(202))}\n\n{body(202)}".encode())
    wire.send_raw(f"Content-Length: {len(body(203)) + 5}\r\n\r\n{body(203)}".encode())
    wire.send_raw(f"Content-Length: {len(body(204)) - 5}\r\n\r\n{body(204)}".encode())
    wire.send_raw(f"Content-Length: 1000000000000\r\n\r\n{body(205)}".encode())
    wire.send_raw(frame(body(206)))
    done = await asyncio.wait_for(asyncio.gather(*futures), 20)
    assert [("error" in r) for r in done] == [False] * 4 + [True, False]
    assert done[4]["error"]["code"] == -32600
    # Exactly the three faults: a body 5 bytes too long, one 5 bytes too short, an oversized
    # length (lower-case and LF-only headers are accepted, not errors).
    assert (await _documents(wire))["framingErrors"] == 3
    assert wire.alive


async def test_lifecycle(wire: WireClient, tmp_path: Path) -> None:
    early = await wire.request("textDocument/completion", {})
    assert early["error"]["code"] == -32002  # ServerNotInitialized
    await _init(wire, "visual-studio-code", tmp_path)
    uri = (tmp_path / "a.py").as_uri()
    _open(wire, uri, "kept = 1\n")
    again = await wire.request(
        "initialize", {"processId": None, "rootUri": None, "capabilities": {}}
    )
    assert again["error"]["code"] == -32600
    assert uri in (await _documents(wire))["documents"]  # a second initialize drops nothing
    assert (await wire.request("shutdown"))["result"] is None
    late = await wire.request("workspace/executeCommand", {"command": "codellama.status"})
    assert late["error"]["code"] == -32600
    wire.notify("exit")
    assert await wire.wait(15) == 0


async def test_exit_without_shutdown_exits_1(wire: WireClient, tmp_path: Path) -> None:
    await _init(wire, "neovim", tmp_path)
    wire.notify("exit")
    assert await wire.wait(15) == 1


async def test_non_string_language_id_still_completes(tiny_model: Path, tmp_path: Path) -> None:
    client = WireClient(
        configuration={"model": str(tiny_model), "debounceMs": 0, "watchDataset": False},
        cwd=tmp_path,
    )
    await client.start()
    try:
        await _init(client, "visual-studio-code", tmp_path)
        for _ in range(600):
            status = await client.request(
                "workspace/executeCommand", {"command": "codellama.status", "arguments": []}
            )
            if status["result"]["model"]["state"] in ("ready", "failed"):
                break
            await asyncio.sleep(0.1)
        assert status["result"]["model"]["state"] == "ready"
        texts = []
        for n, language in enumerate([5, None, {"x": 1}, "python"]):
            uri = (tmp_path / f"doc{n}.py").as_uri()
            # A cursor where the tiny random model writes something (it ends at once after
            # "return ", which would make the comparison below vacuous).
            _open(client, uri, "def mean(values):\n    return sum", language)
            params = {
                "textDocument": {"uri": uri},
                "position": {"line": 1, "character": 14},
                "context": {"triggerKind": 1},
            }
            response = await client.request("textDocument/inlineCompletion", params, timeout=60)
            assert "error" not in response, (language, response)
            texts.append([item["insertText"] for item in response["result"]["items"]])
        assert texts[0] == texts[-1] and texts[0], texts  # same answer as with "python"
    finally:
        await client.shutdown_and_exit()
        await client.kill()
