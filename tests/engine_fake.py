"""A fake OpenAI-compatible inference engine for tests, and the tokenizer of its prompt side.

:class:`FakeEngine` is a stdlib HTTP server in a thread: ``GET /v1/models``, ``POST
/v1/completions`` streamed as server-sent events the way llama-cpp-python's and vLLM's servers
stream them (or plain, for a prefill) and vLLM's ``POST /v1/load_lora_adapter``. It records
every request and its headers and notices when the client goes away (a write fails), so
"cancel closes the stream" is checked on the engine side. Its :class:`Script` makes it slow,
silent, garbling, failing or closing mid-stream.

Shared by the engine backend's own tests (tests/model_runtime) and the tests through the LSP
server (tests/server). Importable as ``engine_fake`` because pytest puts this folder (holding
the root conftest.py) on ``sys.path``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from model_runtime.tiny import END_OF_TEXT, train_bpe_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

QWEN_SPECIALS = [
    END_OF_TEXT,
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
]
"""Qwen2.5-Coder's special tokens: a tokenizer with them gets the ``qwen`` FIM template."""


def tiny_qwen_tokenizer(corpus: Sequence[str]) -> PreTrainedTokenizerFast:
    """A tiny Qwen-style BPE tokenizer trained on ``corpus``: the prompt side of an engine."""
    return train_bpe_tokenizer(corpus, specials=QWEN_SPECIALS, vocab_size=400)


@dataclass
class Script:
    """What the fake engine does with the next completion requests."""

    pieces: list[str] = field(default_factory=lambda: ["foo", "(x)", "\n"])
    finish: str | None = "stop"
    """The ``finish_reason`` of the last piece."""
    delay_s: float = 0.0
    """Between chunks."""
    endless: bool = False
    """Stream ``pieces`` again and again until the client disconnects."""
    before_headers_s: float = 0.0
    """Silence before the response starts (a slow prefill, a hung engine)."""
    mode: str = "ok"
    """``ok`` | ``garbage`` (not JSON) | ``shape`` (JSON without choices) | ``close``
    (mid-stream, no [DONE]) | ``interrupt`` ([DONE] without a finish reason) | ``status`` (an
    HTTP error)."""
    status: int = 500
    """The HTTP status of mode ``status``."""


class FakeEngine:
    """An OpenAI-compatible fake: ``/v1/models``, streamed and plain ``/v1/completions``.

    ``owned_by`` is what ``/v1/models`` says serves the model (``vllm``; llama-cpp-python says
    ``me``; anything else is a plain OpenAI-compatible server without a LoRA API).
    """

    def __init__(self, port: int = 0) -> None:
        self.script = Script()
        self.owned_by = "vllm"
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.adapters: list[dict[str, Any]] = []
        self.disconnected = threading.Event()
        self.first_chunk = threading.Event()
        self.chunks_sent = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.headers.append(dict(self.headers))
                body = {"object": "list", "data": [{"id": "fake-model", "owned_by": fake.owned_by}]}
                fake.send(self, 200, json.dumps(body), "application/json")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                fake.requests.append(body)
                fake.headers.append(dict(self.headers))
                if self.path == "/v1/load_lora_adapter":  # vLLM answers plain text
                    fake.adapters.append(body)
                    fake.send(self, 200, f"Success: LoRA adapter '{body['lora_name']}' added.")
                    return
                fake.serve(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def completions(self) -> list[dict[str, Any]]:
        """The streamed completion requests received (prefills excluded)."""
        return [r for r in self.requests if r.get("stream")]

    @staticmethod
    def send(
        handler: BaseHTTPRequestHandler, status: int, text: str, content_type: str | None = None
    ) -> None:
        """A whole response with a ``Content-Length``."""
        data = text.encode()
        handler.send_response(status)
        if content_type is not None:
            handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def serve(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        script = self.script
        time.sleep(script.before_headers_s)
        if script.mode == "status":
            self.send(handler, script.status, json.dumps({"error": {"message": "model exploded"}}))
            return
        if not body.get("stream"):  # a prefill
            answer = {"choices": [{"text": "x", "finish_reason": "length"}]}
            self.send(handler, 200, json.dumps(answer))
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.end_headers()  # HTTP/1.0: the body ends when we close
        try:
            self._stream(handler, script)
        except (BrokenPipeError, ConnectionResetError):
            self.disconnected.set()

    def _stream(self, handler: BaseHTTPRequestHandler, script: Script) -> None:
        def send(line: str) -> None:
            handler.wfile.write(line.encode() + b"\n\n")
            handler.wfile.flush()

        if script.mode == "garbage":
            send("data: {this is not json")
            return
        if script.mode == "shape":
            send('data: {"object": "text_completion", "answer": 42}')
            return
        pieces = list(script.pieces)
        index = 0
        while index < len(pieces) or script.endless:
            piece = pieces[index % len(pieces)]
            last = index == len(pieces) - 1 and not script.endless
            choice = {"text": piece, "index": 0, "finish_reason": script.finish if last else None}
            send(": ping")  # comments must be ignored
            send("data: " + json.dumps({"choices": [choice]}))
            self.chunks_sent += 1
            self.first_chunk.set()
            index += 1
            if script.mode in ("close", "interrupt") and index == 2:
                if script.mode == "interrupt":
                    send("data: [DONE]")
                return
            time.sleep(script.delay_s)
        send("data: [DONE]")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> FakeEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
