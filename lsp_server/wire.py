"""A raw LSP wire client for protocol tests, the fuzz suite and the soak bench.

Unlike pygls' client it sends exactly the bytes it is given (bad headers, wrong lengths,
invalid JSON, batches), so the server's handling of malformed input can be observed. It starts
``python -m lsp_server``, frames what it sends, parses every message the server writes,
answers the server's own requests (``workspace/configuration``, progress creation,
registrations, ``workspace/applyEdit``) and records responses, notifications and pop-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["WireClient", "frame", "rss_kb"]


def frame(body: bytes | str | Any, *, header: str = "Content-Length: {n}\r\n\r\n") -> bytes:
    """``body`` (bytes, str or a JSON-able object) with a header; ``{n}`` is its length."""
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    data = body.encode("utf-8") if isinstance(body, str) else body
    return header.format(n=len(data)).encode("ascii") + data


def rss_kb(pid: int) -> int | None:
    """Resident set size of process ``pid`` in KiB (Linux), or ``None``."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class WireClient:
    """One server process and the messages exchanged with it."""

    def __init__(
        self,
        *,
        configuration: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        stderr_path: str | Path | None = None,
    ) -> None:
        self.configuration = configuration or {}
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        self.cwd = str(cwd) if cwd else None
        self.stderr_path = stderr_path
        self.process: asyncio.subprocess.Process | None = None
        self.responses: dict[Any, dict[str, Any]] = {}
        self.null_id_errors: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []
        self.server_requests: list[dict[str, Any]] = []
        self.sent = 0
        self._ids = itertools.count(1)
        self._waiters: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._stderr_file: Any = None

    # -- process -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start ``python -m lsp_server`` (stdio)."""
        stderr: Any = asyncio.subprocess.DEVNULL
        if self.stderr_path is not None:
            self._stderr_file = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in wait()
            stderr = self._stderr_file
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lsp_server",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=self.env,
            cwd=self.cwd,
            limit=256 * 1024 * 1024,
        )
        self._reader = asyncio.ensure_future(self._read())

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def wait(self, timeout: float = 10.0) -> int | None:
        """Wait for the process to exit; its code (``None`` if it did not exit in time)."""
        assert self.process is not None
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            return None
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._reader, 2)
        return code

    async def kill(self) -> None:
        """End the process (if still running) and stop reading."""
        if self.alive:
            assert self.process is not None
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()
        if self._stderr_file is not None:
            self._stderr_file.close()

    # -- sending -------------------------------------------------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def send_raw(self, data: bytes) -> None:
        """Write ``data`` to the server's stdin as is."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(data)
        self.sent += 1

    def send(self, message: Any) -> None:
        """Frame and send one JSON-able message."""
        self.send_raw(frame(message))

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def expect(self, msg_id: Any) -> asyncio.Future[dict[str, Any]]:
        """A future resolved with the response to ``msg_id``."""
        if msg_id in self.responses:
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            future.set_result(self.responses[msg_id])
            return future
        return self._waiters.setdefault(msg_id, asyncio.get_running_loop().create_future())

    def request_nowait(self, method: str, params: Any = None) -> tuple[int, asyncio.Future[Any]]:
        """Send a request; its id and the future of its response."""
        msg_id = self.next_id()
        future = self.expect(msg_id)
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return msg_id, future

    async def request(self, method: str, params: Any = None, timeout: float = 30) -> Any:
        """Send a request and return its whole response message."""
        _, future = self.request_nowait(method, params)
        return await asyncio.wait_for(future, timeout)

    async def drain(self) -> None:
        assert self.process is not None and self.process.stdin is not None
        await self.process.stdin.drain()

    async def initialize(
        self,
        capabilities: dict[str, Any],
        *,
        root_uri: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``initialize`` + ``initialized``; the initialize response."""
        response = await self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root_uri,
                "capabilities": capabilities,
                "initializationOptions": options or self.configuration,
            },
            timeout=60,
        )
        self.notify("initialized", {})
        return dict(response)

    async def shutdown_and_exit(self, timeout: float = 20) -> int | None:
        """``shutdown`` then ``exit``; the exit code (``None`` if the server did not exit)."""
        with contextlib.suppress(TimeoutError):
            await self.request("shutdown", None, timeout=timeout)
        self.notify("exit")
        with contextlib.suppress(ConnectionError):
            await self.drain()
        return await self.wait(timeout)

    # -- receiving -----------------------------------------------------------------------------

    def popups(self, *types: int) -> list[dict[str, Any]]:
        """``window/showMessage`` params received (of the given message types, 1 = Error)."""
        shown = [n["params"] for n in self.notifications if n.get("method") == "window/showMessage"]
        return [p for p in shown if not types or p.get("type") in types]

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        while True:
            length = None
            while True:
                line = await stdout.readline()
                if not line:
                    self._fail_waiters()
                    return
                if not line.strip():
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length is None:
                continue
            body = await stdout.readexactly(length)
            self._dispatch(json.loads(body))

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "method" in message and "id" in message:
            self.server_requests.append(message)
            self.send({"jsonrpc": "2.0", "id": message["id"], "result": self._answer(message)})
        elif "method" in message:
            self.notifications.append(message)
        elif message.get("id") is None:
            self.null_id_errors.append(message)
        else:
            self.responses[message["id"]] = message
            waiter = self._waiters.pop(message["id"], None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)

    def _answer(self, request: dict[str, Any]) -> Any:
        method = request["method"]
        if method == "workspace/configuration":
            items = (request.get("params") or {}).get("items") or []
            return [
                self.configuration if item.get("section") == "codellama" else None for item in items
            ]
        if method == "workspace/applyEdit":
            return {"applied": False, "failureReason": "wire client does not edit"}
        return None

    def _fail_waiters(self) -> None:
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("the server closed its output"))
        self._waiters.clear()
