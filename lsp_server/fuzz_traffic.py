"""The traffic of the protocol fuzzer (:mod:`lsp_server.fuzzing`): seeded LSP messages, valid
and malformed, and the reference model of the documents they edit.

:class:`Traffic` sends one message per :meth:`Traffic.step` (opens, edits, closes, completions,
code actions, status requests, and malformed input: wrong params, bad ids, broken JSON,
batches, framing faults) and records what each request must be answered with.

The reference model (:class:`ReferenceDocument`) is deliberately written independently of
:mod:`lsp_server.text`: a character-by-character walk with the LSP line breaks and unit counts.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

from lsp_server.wire import WireClient, frame

_ALPHABET = (
    "abcxyz_ =().:,'01\t" + "\n" * 4 + "\r\n" + "\r" + "é😀ß" + "\x0b\x0c\x1c\x85\u2028\u2029"
)
_BREAK = re.compile(r"\r\n|\r|\n")


def _units(ch: str, encoding: str) -> int:
    """Position units of one character, written apart from :func:`lsp_server.text.units` on
    purpose: the reference model must not share the server's code it checks."""
    if encoding == "utf-8":
        return len(ch.encode("utf-8"))
    if encoding == "utf-16":
        return 2 if ord(ch) > 0xFFFF else 1
    return 1


class ReferenceDocument:
    """What the client believes a document is: text, version, and positions in its encoding."""

    def __init__(self, text: str, encoding: str) -> None:
        self.text = text
        self.version = 1
        self.encoding = encoding

    def lines(self) -> list[tuple[int, str]]:
        """``(start offset, line text without its break)`` for every LSP line."""
        out, start = [], 0
        for match in _BREAK.finditer(self.text):
            out.append((start, self.text[start : match.start()]))
            start = match.end()
        out.append((start, self.text[start:]))
        return out

    def offset(self, line: int, character: int) -> int:
        """Clamped offset of a position (past the end: the end; inside a character: its start)."""
        lines = self.lines()
        if line >= len(lines):
            return len(self.text)
        start, content = lines[line]
        count = 0
        for index, ch in enumerate(content):
            if count >= character:
                return start + index
            count += _units(ch, self.encoding)
            if count > character:
                return start + index
        return start + len(content)

    def random_position(self, rng: random.Random, *, beyond: bool = False) -> tuple[int, int]:
        """A valid position on a character boundary (or, with ``beyond``, past the end)."""
        lines = self.lines()
        if beyond:
            return rng.choice([(len(lines) + rng.randint(0, 3), 0), (len(lines) - 1, 10_000)])
        line = rng.randrange(len(lines))
        content = lines[line][1]
        index = rng.randint(0, len(content))
        return line, sum(_units(ch, self.encoding) for ch in content[:index])

    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


class Traffic:
    """The seeded message generator of one run, and what it expects back.

    Sends through ``client`` and records, per request id, the acceptable error codes
    (:attr:`expected`) and how many id-null errors malformed messages must produce; keeps the
    reference model of every open document (:attr:`docs`) in step with the edits it sends.
    """

    def __init__(self, client: WireClient, rng: random.Random, encoding: str, root: Path) -> None:
        self.client = client
        self.rng = rng
        self.encoding = encoding
        self.root = root
        self.docs: dict[str, ReferenceDocument] = {}
        self.expected: dict[int, set[int] | None] = {}
        """Request id → acceptable error codes (``None``: any answer, result or error)."""
        self.null_expected = 0
        self.count = 0

    # -- message builders ------------------------------------------------------------------

    def text(self, n: int) -> str:
        return "".join(self.rng.choice(_ALPHABET) for _ in range(n))

    def request(self, method: str, params: Any, codes: set[int] | None = None) -> int:
        msg_id = self.client.next_id()
        self.expected[msg_id] = codes
        self.client.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        self.count += 1
        return msg_id

    def notify(self, method: str, params: Any) -> None:
        self.client.notify(method, params)
        self.count += 1

    def raw(self, data: bytes, msg_id: int | None, codes: set[int] | None = None) -> None:
        if msg_id is not None:
            self.expected[msg_id] = codes
        self.client.send_raw(data)
        self.count += 1

    def open(self) -> None:
        uri = (self.root / f"doc{self.rng.randrange(10**6)}.py").as_uri()
        text = self.text(self.rng.randint(0, 400))
        language: Any = self.rng.choice(["python", "python", "plaintext", 5, None])
        self.docs[uri] = ReferenceDocument(text, self.encoding)
        item = {"uri": uri, "languageId": language, "version": 1, "text": text}
        self.notify("textDocument/didOpen", {"textDocument": item})

    def change(self) -> None:
        uri = self.rng.choice(list(self.docs))
        doc = self.docs[uri]
        changes: list[dict[str, Any]] = []
        text = doc.text
        scratch = ReferenceDocument(text, self.encoding)
        reversed_range = False
        for _ in range(self.rng.randint(1, 3)):
            if self.rng.random() < 0.08:
                new = self.text(self.rng.randint(0, 200))
                changes.append({"text": new})
                scratch.text = new
                continue
            a = scratch.random_position(self.rng, beyond=self.rng.random() < 0.05)
            b = scratch.random_position(self.rng, beyond=self.rng.random() < 0.05)
            start, end = sorted([a, b])
            if self.rng.random() < 0.03 and start != end:
                start, end, reversed_range = end, start, True
            s, e = scratch.offset(*start), scratch.offset(*end)
            new = self.text(self.rng.choice([0, 1, 1, 2, 5, 20]))
            changes.append(
                {
                    "range": {
                        "start": {"line": start[0], "character": start[1]},
                        "end": {"line": end[0], "character": end[1]},
                    },
                    "text": new,
                }
            )
            if not reversed_range:
                scratch.text = scratch.text[:s] + new + scratch.text[e:]
        version = doc.version + 1
        if not reversed_range:  # the server rejects the whole didChange (documented)
            doc.text, doc.version = scratch.text, version
        params = {"textDocument": {"uri": uri, "version": version}, "contentChanges": changes}
        self.notify("textDocument/didChange", params)

    def close(self) -> None:
        uri = self.rng.choice(list(self.docs))
        del self.docs[uri]
        self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    def completion(self) -> None:
        uri = self.rng.choice(list(self.docs))
        line, character = self.docs[uri].random_position(self.rng)
        method = self.rng.choice(["textDocument/inlineCompletion", "textDocument/completion"])
        params: dict[str, Any] = {
            "textDocument": {"uri": uri},
            "position": {"line": line, "character": character},
        }
        if method.endswith("inlineCompletion"):
            params["context"] = {"triggerKind": self.rng.choice([1, 2])}
        msg_id = self.request(method, params)
        if self.rng.random() < 0.1:
            self.notify("$/cancelRequest", {"id": msg_id})

    def code_action(self) -> None:
        uri = self.rng.choice(list(self.docs))
        a = self.docs[uri].random_position(self.rng)
        b = self.docs[uri].random_position(self.rng)
        start, end = sorted([a, b])
        params = {
            "textDocument": {"uri": uri},
            "range": {
                "start": {"line": start[0], "character": start[1]},
                "end": {"line": end[0], "character": end[1]},
            },
            "context": {"diagnostics": [], "triggerKind": 1},
        }
        self.request("textDocument/codeAction", params)

    def bad(self) -> None:
        uri = self.rng.choice(list(self.docs)) if self.docs else "file:///none.py"
        pos = {"line": 0, "character": 0}
        td = {"uri": uri}
        invalid_params = {-32602}
        choice = self.rng.randrange(16)
        if choice == 0:
            self.request("textDocument/inlineCompletion", None, invalid_params)
        elif choice == 1:
            self.request("textDocument/completion", [], invalid_params)
        elif choice == 2:
            line = self.rng.choice([-1, 2**31, -(2**40)])
            params = {"textDocument": td, "position": {"line": line, "character": 0}}
            self.request("textDocument/completion", params, invalid_params)
        elif choice == 3:
            context = {"triggerKind": self.rng.choice([0, 99, "x"])}
            params = {"textDocument": td, "position": pos, "context": context}
            self.request("textDocument/inlineCompletion", params, invalid_params)
        elif choice == 4:  # a batch: each request answered InvalidRequest
            ids = [self.client.next_id(), self.client.next_id()]
            batch = [{"jsonrpc": "2.0", "id": i, "method": "shutdown"} for i in ids]
            for i in ids:
                self.expected[i] = {-32600}
            self.client.send(batch)
            self.count += 1
        elif choice == 5:
            msg_id = self.client.next_id()
            body = {"jsonrpc": "1.0", "id": msg_id, "method": "shutdown"}
            self.raw(frame(body), msg_id, {-32600})
        elif choice == 6:
            bad_id: Any = self.rng.choice([[1], {"a": 1}, 1.5, True, None])
            self.null_expected += 1
            self.raw(frame({"jsonrpc": "2.0", "id": bad_id, "method": "shutdown"}), None)
        elif choice == 7:
            self.null_expected += 1
            junk = self.rng.choice([b"{bad json", b"\xff\xfe", b"[1, 2", b'{"a": }'])
            self.raw(frame(junk), None)
        elif choice == 8:
            self.null_expected += 1
            self.raw(frame(self.rng.choice(["42", '"x"', "null", "[]"])), None)
        elif choice == 9:
            self.request("codellama/noSuchMethod", {}, {-32601})
        elif choice == 10:
            args = self.rng.choice([[7], [[1]], [{"uri": 3}]])
            self.request(
                "workspace/executeCommand",
                {
                    "command": "codellama.documents"
                    if args == [{"uri": 3}]
                    else "codellama.useAdapter",
                    "arguments": args,
                },
                invalid_params,
            )
        elif choice == 11:
            data = {"uri": uri, "range": [0, 0, 0, 0], "kind": "nope"}
            self.request(
                "workspace/executeCommand",
                {"command": "codellama.refactor", "arguments": [data]},
                invalid_params,
            )
        elif choice == 12:  # bad notifications: no answer, no effect
            self.notify(
                self.rng.choice(["textDocument/didChange", "textDocument/didOpen"]),
                self.rng.choice([None, [], {"textDocument": 5}]),
            )
        elif choice == 13:  # changes to a document that is not open
            params = {
                "textDocument": {"uri": "file:///not/open.py", "version": 9},
                "contentChanges": [{"text": "x"}],
            }
            self.notify("textDocument/didChange", params)
        elif choice == 14:
            self.notify("$/cancelRequest", {"id": self.rng.choice([10**9, "nope"])})
        else:
            self.framing_fault()

    def framing_fault(self) -> None:
        msg_id = self.client.next_id()
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": msg_id,
                "method": "workspace/executeCommand",
                "params": {"command": "codellama.documents", "arguments": [{"uri": "file:///x"}]},
            }
        )
        n = len(body)
        header = self.rng.choice(
            [
                f"content-length: {n}\r\n\r\n",
                f"Content-Length: {n}\n\n",
                f"Content-Length: {n + 5}\r\n\r\n",
                f"Content-Length: {n - 5}\r\n\r\n",
                f"CONTENT-LENGTH:{n}\r\ncontent-type: application/vscode-jsonrpc\r\n\r\n",
            ]
        )
        self.raw((header + body).encode(), msg_id, None)
        if header.startswith(f"Content-Length: {n + 5}"):
            self.client.send(  # the next frame completes the over-long read
                {"jsonrpc": "2.0", "method": "$/setTrace", "params": {"value": "off"}}
            )
            self.count += 1

    def step(self) -> None:
        r = self.rng.random()
        if not self.docs or r < 0.04:
            self.open()
        elif r < 0.42:
            self.change()
        elif r < 0.45 and len(self.docs) > 1:
            self.close()
        elif r < 0.58:
            self.completion()
        elif r < 0.63:
            self.code_action()
        elif r < 0.66:
            self.request(
                "workspace/executeCommand", {"command": "codellama.status", "arguments": []}
            )
        else:
            self.bad()
