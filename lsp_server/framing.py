"""LSP base protocol framing: a byte stream → JSON messages, resynchronising after bad frames.

pygls 2.1.1 reads ``Content-Length: N\\r\\n`` with a case-sensitive, CRLF-only regex and then
exactly N bytes. A lower-case header or LF-only header lines are never recognised, and a
Content-Length a few bytes off shifts every later read: the server stays alive but deaf for
good. ``Content-Length: 1000000000000`` makes it allocate the body (``MemoryError``, exit).

:class:`FrameReader` instead:

- accepts header names in any case and lines ending in ``\\r\\n`` or ``\\n`` (HTTP-style headers);
- caps a message at :data:`MAX_MESSAGE_BYTES` and a header block at :data:`MAX_HEADER_BYTES`;
  a bigger frame is skipped (an id found at its start gets an error answer, see
  :attr:`Frame.error_id`), never allocated;
- recovers from a wrong Content-Length: when the declared body is not JSON but a JSON value
  ends inside it, that value is the message and the rest is pushed back (length too long);
  when the body is truncated, the bytes up to the next header complete it (length too short);
  a body that arrives short of its declared length but is already complete JSON is taken
  after a short stall (the client is waiting for the answer, more bytes will not come);
- otherwise reports a parse error and resynchronises on the next ``Content-Length`` header.

Every framing problem is logged once, with what was skipped.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_MESSAGE_BYTES",
    "ChunkQueue",
    "Frame",
    "FrameReader",
    "read_stream_into",
    "start_reader_thread",
]

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 128 * 1024 * 1024
"""Largest accepted message body. A 10 MB document of non-ASCII text is ≤ 40 MB of JSON
(UTF-8, or 6-byte ``\\uXXXX`` escapes for BMP characters: ≤ 60 MB); 128 MB leaves room and
bounds what one frame can make the server allocate."""

MAX_HEADER_BYTES = 8192
"""Largest header block (real clients send ≤ 100 bytes)."""

STALL_SECONDS = 0.2
"""How long a body may stop arriving before a complete-JSON prefix is taken as the message."""

CHUNK_BYTES = 65536
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_HEADER_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*:[ \t]*(.*?)[ \t]*")
_CONTENT_LENGTH = re.compile(rb"content-length[ \t]*:", re.IGNORECASE)
_ID_SNIFF = re.compile(rb'"id"\s*:\s*(-?\d{1,18}|"(?:[^"\\]|\\.){0,200}")')
_PARAMS_KEY = re.compile(rb'"params"\s*:')
_DECODER = json.JSONDecoder()


@dataclass
class Frame:
    """One message read from the stream: parsed ``data``, or an ``error`` to answer."""

    data: Any = None
    error: str | None = None
    """Why the frame is not a message (answered with ``error_code`` and id ``error_id``)."""
    error_code: int = -32700
    """ParseError (-32700) for unparseable bodies, InvalidRequest (-32600) for oversized ones."""
    error_id: int | str | None = None


class ChunkQueue:
    """Bounded hand-over of byte chunks from a reader (thread or task) to the frame reader.

    At most ``depth`` chunks wait unread: a slow server stops reading instead of buffering
    whatever the client sends. ``b""`` marks the end of the stream.
    """

    def __init__(self, depth: int = 16) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.slots = threading.Semaphore(depth)
        self._pending: asyncio.Future[bytes] | None = None

    async def get(self, timeout: float | None = None) -> bytes | None:
        """The next chunk; ``None`` on timeout (the chunk is then still delivered later).

        A timed-out ``get`` is kept pending and awaited again by the next call, never
        cancelled: cancelling ``queue.get()`` inside ``asyncio.wait_for`` can drop a chunk that
        arrived just as the timeout fired (a lost chunk is a lost message; seen under load).
        """
        if self._pending is None:
            self._pending = asyncio.ensure_future(self.queue.get())
        done, _ = await asyncio.wait({self._pending}, timeout=timeout)
        if not done:
            return None
        chunk = self._pending.result()
        self._pending = None
        self.slots.release()
        return chunk


def start_reader_thread(stream: BinaryIO, chunks: ChunkQueue) -> threading.Thread:
    """Read ``stream`` on a daemon thread into ``chunks`` (a blocked read never keeps the
    process alive at exit, unlike a thread of pygls' pool)."""
    loop = asyncio.get_running_loop()
    read: Callable[[int], bytes]
    try:  # the raw descriptor: a thread blocked in a buffered read holds the buffer's lock,
        fd = stream.fileno()  # and Python aborts at exit when it cannot take that lock
        read = functools.partial(os.read, fd)
    except (AttributeError, OSError, ValueError):
        read = getattr(stream, "read1", stream.read)

    def run() -> None:
        while True:
            chunks.slots.acquire()
            try:
                chunk = read(CHUNK_BYTES)
            except (OSError, ValueError) as exc:
                logger.warning("reading from the client failed: %s", exc)
                chunk = b""
            try:
                loop.call_soon_threadsafe(chunks.queue.put_nowait, chunk or b"")
            except RuntimeError:  # the loop is closed
                return
            if not chunk:
                return

    thread = threading.Thread(target=run, name="codellama-stdin", daemon=True)
    thread.start()
    return thread


async def read_stream_into(reader: asyncio.StreamReader, chunks: ChunkQueue) -> None:
    """Feed an asyncio stream (TCP) into ``chunks`` (run as a task)."""
    while True:
        await asyncio.to_thread(chunks.slots.acquire)
        chunk = await reader.read(CHUNK_BYTES)
        chunks.queue.put_nowait(chunk)
        if not chunk:
            return


class FrameReader:
    """Turns the chunks of a byte stream into :class:`Frame` objects (see the module doc)."""

    def __init__(
        self,
        chunks: ChunkQueue,
        *,
        max_message: int = MAX_MESSAGE_BYTES,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.chunks = chunks
        self.max_message = max_message
        self.stall_seconds = stall_seconds
        self.buffer = bytearray()
        self.eof = False
        self.framing_errors = 0

    async def _fill(self, timeout: float | None = None) -> bool:
        """Append the next chunk; False at end of stream or after ``timeout`` seconds."""
        if self.eof:
            return False
        chunk = await self.chunks.get(timeout)
        if chunk is None:
            return False
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def _problem(self, message: str, *args: Any) -> None:
        self.framing_errors += 1
        logger.warning("LSP framing error: " + message, *args)

    async def next_frame(self) -> Frame | None:
        """The next message (or error to answer); ``None`` at the end of the stream."""
        while True:
            length = await self._read_header()
            if length is None:
                return None
            if length > self.max_message:
                return await self._skip_oversized(length)
            while len(self.buffer) < length:
                if not await self._fill(self.stall_seconds if self.buffer else None):
                    if self.eof:
                        if (frame := self._complete_prefix(length)) is not None:
                            return frame  # a too-long Content-Length on the last message
                        self._problem("stream ended inside a %d-byte body", length)
                        return None
                    if (frame := self._complete_prefix(length)) is not None:
                        return frame
            body = bytes(self.buffer[:length])
            del self.buffer[:length]
            return await self._parse(body, length)

    async def _read_header(self) -> int | None:
        """Consume one header block; its Content-Length (``None`` at end of stream)."""
        while True:
            while self.buffer[:1] in (b"\r", b"\n"):  # stray blank lines between messages
                del self.buffer[:1]
            match = _HEADER_END.search(self.buffer, 0, MAX_HEADER_BYTES + 4)
            if match is None:
                if len(self.buffer) > MAX_HEADER_BYTES:
                    self._resync(f"no end of headers in {len(self.buffer)} bytes")
                    continue
                if not await self._fill():
                    if self.buffer.strip():
                        self._problem("stream ended inside a header: %r", bytes(self.buffer[:80]))
                    return None
                continue
            block = bytes(self.buffer[: match.start()])
            length, problem = _content_length(block)
            if problem is not None:
                before = len(self.buffer)
                self._resync(problem)
                if len(self.buffer) == before:
                    # A short buffer that is one complete but invalid header block: resync keeps
                    # it (it could be a header's start) and it would be re-read forever (seen
                    # under load, when a stall split the stream differently). Drop the block.
                    del self.buffer[: match.end()]
                continue
            del self.buffer[: match.end()]
            assert length is not None
            return length

    def _resync(self, reason: str) -> None:
        """Drop bytes up to the next ``Content-Length`` header after the current position."""
        match = _CONTENT_LENGTH.search(self.buffer, 1)
        # Without a header in sight, keep the last bytes: they may be the start of one.
        skipped = match.start() if match is not None else max(0, len(self.buffer) - 32)
        self._problem("%s; skipped %d bytes to resynchronise", reason, skipped)
        del self.buffer[:skipped]

    async def _skip_oversized(self, length: int) -> Frame:
        """Answer (when an id is visible at its start) and skip a frame over the size cap."""
        while len(self.buffer) < 4096 and await self._fill(self.stall_seconds):
            pass
        head = bytes(self.buffer[:4096])
        self._resync(f"message of {length} bytes is over the {self.max_message}-byte limit")
        error = f"message of {length} bytes exceeds the server's limit of {self.max_message}"
        return Frame(error=error, error_code=-32600, error_id=_sniff_id(head))

    def _complete_prefix(self, length: int) -> Frame | None:
        """After a stall: the buffered part of a body, if it already is a complete JSON value."""
        if not self.buffer.rstrip().endswith((b"}", b"]")):
            return None
        try:
            data = json.loads(self.buffer)
        except ValueError:
            return None
        self._problem(
            "Content-Length %d but the message ended after %d bytes", length, len(self.buffer)
        )
        self.buffer.clear()
        return Frame(data=data)

    async def _parse(self, body: bytes, length: int) -> Frame:
        try:
            return Frame(data=json.loads(body))
        except RecursionError:
            return Frame(error="message nested too deeply")
        except ValueError as exc:
            first_error = str(exc)
        # Content-Length too long: a complete value followed by the start of the next frame.
        text = body.decode("utf-8", "surrogateescape")
        start = len(text) - len(text.lstrip())
        try:
            data, end = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            pass
        else:
            rest = text[end:].lstrip().encode("utf-8", "surrogateescape")
            # The next header may be split between ``rest`` and bytes not read yet.
            while len(rest) + len(self.buffer) < 32 and await self._fill(self.stall_seconds):
                pass
            if _CONTENT_LENGTH.match(rest) or _CONTENT_LENGTH.match(
                (rest + bytes(self.buffer[:32]))[:32]
            ):
                self._problem("Content-Length %d is %d bytes too long", length, len(rest))
                self.buffer[0:0] = rest
                return Frame(data=data)
        # Content-Length too short: the body continues up to the next header.
        # Read on (without waiting past a stall) until the next header is in sight.
        while (
            _CONTENT_LENGTH.search(self.buffer) is None
            and len(self.buffer) < MAX_HEADER_BYTES
            and await self._fill(self.stall_seconds)
        ):
            pass
        match = _CONTENT_LENGTH.search(self.buffer)
        tail = len(self.buffer) if match is None else match.start()
        if tail and tail <= self.max_message - length:
            try:
                data = json.loads(body + bytes(self.buffer[:tail]))
            except (ValueError, RecursionError):
                pass
            else:
                self._problem("Content-Length %d is %d bytes too short", length, tail)
                del self.buffer[:tail]
                return Frame(data=data)
        self._problem("body of %d bytes is not JSON (%s)", length, first_error)
        if match is not None:
            del self.buffer[: match.start()]
        return Frame(error=f"invalid JSON: {first_error}")


def _content_length(block: bytes) -> tuple[int | None, str | None]:
    """The Content-Length of a header block, or why the block is not a valid header."""
    length: int | None = None
    for line in re.split(rb"\r?\n", block):
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            return None, f"not a header line: {line[:80]!r}"
        if match.group(1).lower() == b"content-length":
            value = match.group(2)
            if not value.isdigit() or len(value) > 18:
                return None, f"bad Content-Length {value[:40]!r}"
            length = int(value)
    if length is None:
        return None, "header block without Content-Length"
    return length, None


def _sniff_id(head: bytes) -> int | str | None:
    """The request id near the start of a (too large to parse) body, if it precedes params."""
    match = _ID_SNIFF.search(head)
    params = _PARAMS_KEY.search(head)
    if match is None or (params is not None and params.start() < match.start()):
        return None
    try:
        value = json.loads(match.group(1))
    except ValueError:
        return None
    return value if isinstance(value, int | str) else None
