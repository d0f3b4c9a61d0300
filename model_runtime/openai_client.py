"""A small, cancellable HTTP client for OpenAI-compatible inference engines (stdlib only).

What :class:`model_runtime.openai_engine.OpenAIEngine` needs from an engine's HTTP API, and
nothing more: ``GET`` / ``POST`` JSON and a streamed ``POST`` whose server-sent events
(``data: {...}`` lines, ``data: [DONE]`` at the end) come back one parsed object at a time.

- **Cancellation closes the connection.** A watcher thread polls the caller's
  ``threading.Event`` (every :data:`CANCEL_POLL_S`) and shuts the socket down, which also
  unblocks a read waiting for the engine's first byte (a long prefill); engines stop decoding
  when they see the disconnect (llama-cpp-python's server checks after every streamed token).
- **Nothing hangs.** Every socket read has a timeout (a longer one until the first event, for
  the prefill); the whole request has a deadline; lines are bounded in length.
- **Every failure is one** :class:`EngineUnavailable` whose message is a single line that says
  what happened (not reachable, HTTP status and the engine's own message, silent for N s,
  malformed event, stream closed before ``[DONE]``). The API key is never part of a message.
- The key goes only to the configured endpoint: redirects are not followed, and an endpoint
  with credentials in its URL is refused (put the key in the environment variable instead).

A new connection per request: a cancelled stream must be closed anyway, and on 127.0.0.1 a
connect costs well under a millisecond.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CANCEL_POLL_S = 0.005
"""How often the watcher looks at the cancel event: the close reaches the engine this fast."""
MAX_LINE = 1 << 20
"""Longest event line accepted (a completion chunk is a few hundred bytes)."""
MAX_ERROR_BODY = 1 << 16
"""Bytes of an error response read for its message."""


class EngineUnavailable(RuntimeError):
    """The engine could not serve a request; ``str(self)`` is one user-facing line."""


@dataclass(frozen=True)
class Endpoint:
    """Where the engine listens: ``http(s)://host:port`` plus an optional base path."""

    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Parse a base URL (``http://127.0.0.1:8080``, ``https://gpu.example/v1``).

        A trailing ``/v1`` is dropped (the client adds ``/v1/...`` itself). Raises
        ``ValueError`` with a message naming the problem.
        """
        parts = urlsplit(url.strip())
        if parts.scheme not in {"http", "https"}:
            raise ValueError(f"endpoint {url!r}: use an http:// or https:// URL")
        if not parts.hostname:
            raise ValueError(f"endpoint {url!r} has no host")
        if parts.username or parts.password:
            raise ValueError(
                "endpoint: do not put credentials in the URL; name an environment variable "
                "holding the API key instead"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"endpoint {url!r}: no query or fragment allowed")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ValueError(f"endpoint {url!r}: {exc}") from None
        base = parts.path.rstrip("/")
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        return cls(parts.scheme, parts.hostname, port, base)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.base_path}"


class _CancelWatch:
    """Shuts :attr:`sock` down as soon as ``cancel`` is set (until :meth:`stop`).

    The socket is kept here, not read from the connection: ``http.client`` hands it to the
    response and forgets it (``conn.sock`` is ``None``) once a ``Connection: close`` answer
    has started.
    """

    def __init__(self, cancel: threading.Event | None) -> None:
        self.sock: socket.socket | None = None
        self._cancel = cancel
        self._done = threading.Event()
        self.fired = False
        self._thread: threading.Thread | None = None
        if cancel is not None:
            self._thread = threading.Thread(target=self._run, name="engine-cancel", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        assert self._cancel is not None
        while not self._done.is_set():
            if self._cancel.wait(CANCEL_POLL_S):
                self.fired = True
                if self.sock is not None:
                    with contextlib.suppress(OSError):
                        self.sock.shutdown(socket.SHUT_RDWR)
                return

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()


class OpenAIClient:
    """HTTP access to one engine. Thread-safe (no shared connection state).

    ``api_key``: a callable returning the key (read from the environment per request) or
    ``None``. ``first_byte_timeout_s``: longest wait for the response and its first event (the
    engine prefills the prompt meanwhile); ``read_timeout_s``: longest silence between events
    after that; ``total_timeout_s``: deadline of a whole request.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        api_key: Callable[[], str | None] | None = None,
        connect_timeout_s: float = 3.0,
        first_byte_timeout_s: float = 60.0,
        read_timeout_s: float = 15.0,
        total_timeout_s: float = 120.0,
    ) -> None:
        self.endpoint = Endpoint.parse(endpoint)
        self._api_key = api_key or (lambda: None)
        self.connect_timeout_s = connect_timeout_s
        self.first_byte_timeout_s = first_byte_timeout_s
        self.read_timeout_s = read_timeout_s
        self.total_timeout_s = total_timeout_s

    # -- requests ------------------------------------------------------------------------------

    def get_json(self, path: str, *, timeout_s: float | None = None) -> Any:
        """``GET`` ``path`` and return the parsed JSON body."""
        with self._request("GET", path, None, None, timeout_s) as (resp, _watch):
            return self._json_body(resp, path)

    def post_json(
        self,
        path: str,
        body: dict[str, Any],
        *,
        cancel: threading.Event | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """``POST`` ``body``; the parsed JSON answer (``None`` when cancelled)."""
        try:
            with self._request("POST", path, body, cancel, timeout_s) as (resp, _watch):
                return self._json_body(resp, path)
        except EngineUnavailable:
            if cancel is not None and cancel.is_set():
                return None
            raise

    def post_text(self, path: str, body: dict[str, Any]) -> str:
        """``POST`` ``body``; the answer as text (vLLM's LoRA endpoints answer plain text)."""
        with self._request("POST", path, body, None, None) as (resp, _watch):
            try:
                return resp.read(MAX_ERROR_BODY).decode("utf-8", "replace")
            except (OSError, http.client.HTTPException) as exc:
                raise EngineUnavailable(
                    f"engine at {self.endpoint} closed the answer early ({_reason(exc)})"
                ) from None

    @contextlib.contextmanager
    def stream(
        self, path: str, body: dict[str, Any], cancel: threading.Event | None = None
    ) -> Iterator[Iterator[dict[str, Any]]]:
        """``POST`` ``body`` and iterate over the streamed events' JSON objects.

        Leaving the ``with`` block closes the connection (how a caller stops the engine early).
        When ``cancel`` is set the iteration just ends (no error); the caller checks ``cancel``.
        Raises :class:`EngineUnavailable` for every other way the stream can fail.
        """
        cancelled = cancel.is_set if cancel is not None else lambda: False
        with contextlib.ExitStack() as stack:
            try:
                resp, watch = stack.enter_context(self._request("POST", path, body, cancel, None))
            except EngineUnavailable:
                if not cancelled():
                    raise
                yield iter(())  # cancelled before the answer started (during the prefill)
                return
            try:
                yield self._events(resp, watch, cancel)
            except EngineUnavailable:
                if not cancelled():
                    raise

    # -- internals -----------------------------------------------------------------------------

    def _headers(self, body: bytes | None) -> dict[str, str]:
        headers = {"Accept": "application/json, text/event-stream", "Connection": "close"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        ep = self.endpoint
        if ep.scheme == "https":
            return http.client.HTTPSConnection(
                ep.host, ep.port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)

    @contextlib.contextmanager
    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        cancel: threading.Event | None,
        timeout_s: float | None,
    ) -> Iterator[tuple[http.client.HTTPResponse, _CancelWatch]]:
        where = f"engine at {self.endpoint}"
        data = json.dumps(body).encode() if body is not None else None
        conn = self._connection(self.connect_timeout_s)
        watch = _CancelWatch(cancel)
        try:
            try:
                conn.connect()
            except OSError as exc:
                raise EngineUnavailable(f"{where} is not reachable ({_reason(exc)})") from None
            assert conn.sock is not None
            watch.sock = conn.sock
            conn.sock.settimeout(timeout_s or self.first_byte_timeout_s)
            try:
                conn.request(method, self.endpoint.base_path + path, data, self._headers(data))
                resp = conn.getresponse()
            except TimeoutError:
                raise EngineUnavailable(
                    f"{where} did not answer within {timeout_s or self.first_byte_timeout_s:.0f} s"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                raise EngineUnavailable(f"{where} dropped the request ({_reason(exc)})") from None
            if resp.status != 200:
                raise EngineUnavailable(_status_message(where, resp))
            yield resp, watch
        finally:
            watch.stop()
            conn.close()

    def _json_body(self, resp: http.client.HTTPResponse, path: str) -> Any:
        where = f"engine at {self.endpoint}"
        try:
            raw = resp.read()
        except TimeoutError:
            raise EngineUnavailable(f"{where} stopped sending ({path})") from None
        except (OSError, http.client.HTTPException) as exc:
            raise EngineUnavailable(f"{where} closed the answer early ({_reason(exc)})") from None
        try:
            return json.loads(raw)
        except ValueError:
            raise EngineUnavailable(
                f"{where} answered {path} with something that is not JSON: {_preview(raw)}"
            ) from None

    def _events(
        self,
        resp: http.client.HTTPResponse,
        watch: _CancelWatch,
        cancel: threading.Event | None,
    ) -> Iterator[dict[str, Any]]:
        """Parsed ``data:`` events until ``[DONE]``; comments (pings) and other fields skipped."""
        where = f"engine at {self.endpoint}"
        deadline = time.monotonic() + self.total_timeout_s
        silent_since = time.monotonic()
        limit = self.first_byte_timeout_s
        while True:
            try:
                line = resp.readline(MAX_LINE + 1)
            except TimeoutError:
                raise EngineUnavailable(f"{where} sent nothing for {limit:.0f} s") from None
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if cancel is not None and cancel.is_set():
                    return
                raise EngineUnavailable(f"{where} broke the stream ({_reason(exc)})") from None
            if cancel is not None and cancel.is_set():
                return
            if not line:
                raise EngineUnavailable(f"{where} closed the stream before it finished")
            if len(line) > MAX_LINE:
                raise EngineUnavailable(f"{where} sent an event line over {MAX_LINE} bytes")
            now = time.monotonic()
            if now > deadline:
                raise EngineUnavailable(
                    f"{where} did not finish within {self.total_timeout_s:.0f} s"
                )
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if not text.startswith("data:"):
                if now - silent_since > limit:  # only pings for too long
                    raise EngineUnavailable(f"{where} sent no data for {limit:.0f} s")
                continue  # blank separator, ": ping", "event:", "id:", "retry:"
            payload = text[5:].strip()
            if payload == "[DONE]":
                return
            try:
                event = json.loads(payload)
            except ValueError:
                raise EngineUnavailable(
                    f"{where} sent a malformed event: {_preview(payload.encode())}"
                ) from None
            if not isinstance(event, dict):
                raise EngineUnavailable(f"{where} sent a malformed event: {_preview(line)}")
            if "error" in event and "choices" not in event:
                raise EngineUnavailable(f"{where} failed mid-stream: {_error_text(event)}")
            if limit != self.read_timeout_s and watch.sock is not None:
                limit = self.read_timeout_s
                watch.sock.settimeout(limit)
            silent_since = now
            yield event


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"unknown host: {exc.strerror}"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def _preview(raw: bytes, limit: int = 80) -> str:
    text = raw[:limit].decode("utf-8", "replace").replace("\n", "\\n")
    return repr(text + ("…" if len(raw) > limit else ""))


def _error_text(data: Any) -> str:
    """The engine's own error message (OpenAI, vLLM, FastAPI and llama.cpp shapes)."""
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            for key in ("message", "detail", "msg"):
                if key in error:
                    return (
                        _error_text(error[key]) if not isinstance(error[key], str) else (error[key])
                    )
        elif isinstance(error, str):
            return error
        if "detail" in data:
            return _error_text(data["detail"])
    if isinstance(data, list) and data:
        return _error_text(data[0])
    return str(data)[:200]


def _status_message(where: str, resp: http.client.HTTPResponse) -> str:
    try:
        raw = resp.read(MAX_ERROR_BODY)
    except (OSError, http.client.HTTPException):
        raw = b""
    try:
        detail = _error_text(json.loads(raw))
    except ValueError:
        detail = raw.decode("utf-8", "replace").strip()
    detail = " ".join(detail.split())[:200]
    hint = ""
    if resp.status in (401, 403):
        hint = ": check the API key (the environment variable named by the apiKeyEnv setting)"
    elif resp.status == 404:
        hint = ": check the endpoint and the engineModel setting"
    return f"{where} answered HTTP {resp.status}{hint}" + (f" ({detail})" if detail else "")
