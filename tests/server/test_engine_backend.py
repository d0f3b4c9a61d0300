"""Setting ``backend`` end to end: the real server over stdio, its tokens from an engine.

``backend: openai`` runs against a fake OpenAI-compatible engine in this process
(``tests/engine_fake.py``: a stdlib HTTP server in a thread that streams server-sent events like
vLLM's server, records requests and notices when the client goes away): completions arrive
through the LSP; an engine that is down, slow, garbling, closing mid-stream or interrupted
answers empty within a bound, with one clear log line and the reason in ``codellama.status``,
is never cached, and is used again as soon as it answers; ``$/cancelRequest`` closes the stream
(seen on the engine side). The prompt side is a tiny Qwen-style tokenizer saved to a directory
(the ``model`` setting).

``backend: llama.cpp`` (slow) starts the real managed llama.cpp server on the bundled Qwen GGUF
through the LSP server and checks that it is gone after ``shutdown`` + ``exit``. It fails, never
skips, when llama-cpp-python is missing (``scripts/build_llama_cpp.sh`` builds it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from engine_fake import FakeEngine, Script, tiny_qwen_tokenizer
from lsp_harness import ServerProcesses
from lsprotocol import types
from pytest_lsp import LanguageClient
from server_helpers import (
    CORPUS,
    inline,
    inline_params,
    open_document,
    poll_status,
    status,
    wait_for_state,
)

from lsp_server.model_host import ModelKey
from lsp_server.settings import Settings, parse_settings
from model_runtime.llama_server import free_port

KEY = "sk-engine-test-7c41"
KEY_ENV = "CODELLAMA_TEST_ENGINE_KEY"
CODE = "def main():\n    value = \n    return value\n"
"""Completed at line 1, character 12 (after ``value = ``)."""
TIMEOUT_S = 1.0
"""The engines' first-byte timeout in these tests (``CODELLAMA_ENGINE_TIMEOUT_S``)."""


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen-style tokenizer (its FIM tokens): the prompt side of the remote engine."""
    out = tmp_path_factory.mktemp("qwen-tokenizer")
    tiny_qwen_tokenizer(CORPUS * 5).save_pretrained(out)
    return out


@pytest.fixture
def fake() -> Iterator[FakeEngine]:
    with FakeEngine() as server:
        yield server


@pytest.fixture
def engine_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's environment: the engine's key and short engine timeouts."""
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("CODELLAMA_ENGINE_TIMEOUT_S", str(TIMEOUT_S))


@pytest_asyncio.fixture
async def servers(tmp_path: Path) -> AsyncIterator[ServerProcesses]:
    processes = ServerProcesses(tmp_path)
    yield processes
    await processes.stop_all()


def openai_options(tokenizer_dir: Path, endpoint: str) -> dict[str, Any]:
    return {
        "model": str(tokenizer_dir),
        "backend": "openai",
        "endpoint": endpoint,
        "engineModel": "fake-model",
        "apiKeyEnv": KEY_ENV,
        "maxNewTokens": 8,
        "debounceMs": 0,
        "prefetch": False,
        "watchDataset": False,
    }


async def timed_inline(client: LanguageClient, uri: str) -> tuple[str, float]:
    started = time.perf_counter()
    text = await inline(client, uri, 1, 12)
    return text, time.perf_counter() - started


def warnings_about(client: LanguageClient, text: str) -> list[str]:
    return [
        m.message
        for m in client.log_messages
        if m.type in (types.MessageType.Warning, types.MessageType.Error) and text in m.message
    ]


# -- units -------------------------------------------------------------------------------------


def test_backend_settings_are_checked() -> None:
    settings, errors = parse_settings({"backend": "openai"})
    assert settings.backend == "openai"  # kept: nothing is served until the endpoint is set
    assert [e.name for e in errors] == ["endpoint"] and "needs the engine's base URL" in str(
        errors[0]
    )
    settings, errors = parse_settings(
        {"backend": "openai", "endpoint": " http://gpu:8000/v1 ", "apiKeyEnv": " TEAM_KEY "}
    )
    assert errors == [] and settings.endpoint == "http://gpu:8000/v1"
    assert settings.api_key_env == "TEAM_KEY"
    _, errors = parse_settings({"apiKeyEnv": KEY})  # the key itself pasted: never echoed
    assert [e.name for e in errors] == ["apiKeyEnv"] and KEY not in str(errors[0])
    _, errors = parse_settings({"endpoint": "http://me:hunter2@gpu:8000"})
    assert "credentials" in str(errors[0]) and "hunter2" not in str(errors[0])
    _, errors = parse_settings({"endpoint": "ftp://gpu", "backend": "vllm"})
    assert {e.name for e in errors} == {"endpoint", "backend"}


def test_reload_key_holds_only_what_the_backend_uses() -> None:
    local = Settings(backend="inprocess", endpoint="http://a:1")
    assert ModelKey.of(local) == ModelKey.of(Settings(endpoint="http://b:2"))
    remote = Settings(backend="openai", endpoint="http://a:1", dtype="float16")
    assert ModelKey.of(remote) == ModelKey.of(Settings(backend="openai", endpoint="http://a:1"))
    assert ModelKey.of(remote) != ModelKey.of(Settings(backend="openai", endpoint="http://b:1"))
    assert ModelKey.of(Settings(backend="llama.cpp")) != ModelKey.of(Settings())


def test_llama_cpp_backend_says_what_it_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    from lsp_server import remote_engine
    from model_runtime import llama_server
    from model_runtime.loaded import ModelLoadError

    with pytest.raises(ModelLoadError, match=r"serves GGUF models: set model to 'bundled:qwen"):
        remote_engine.gguf_for("Qwen/Qwen2.5-Coder-7B")
    monkeypatch.setattr(llama_server, "llama_cpp_available", lambda: False)
    with pytest.raises(ModelLoadError, match=r"run scripts/build_llama_cpp\.sh"):
        remote_engine.open_backend(
            Settings(backend="llama.cpp"), lambda *a: None, lambda server: None
        )


# -- backend: openai through the LSP -----------------------------------------------------------


@pytest.mark.usefixtures("engine_env")
async def test_openai_backend_serves_fails_cleanly_and_recovers(
    servers: ServerProcesses, fake: FakeEngine, tokenizer_dir: Path, tmp_path: Path
) -> None:
    client = await servers.start("visual-studio-code", openai_options(tokenizer_dir, fake.url))
    report = await wait_for_state(client, "ready", timeout=120)
    model = report["model"]
    assert model["backend"] == "openai" and model["error"] is None
    engine = model["engine"]
    assert engine["endpoint"] == fake.url and engine["flavor"] == "vllm"
    assert engine["engineModel"] == "fake-model" and engine["engineError"] is None

    uri = (tmp_path / "ok.py").as_uri()
    open_document(client, uri, CODE)
    text, _ = await timed_inline(client, uri)
    assert text == "foo(x)"
    body = fake.completions()[-1]
    assert isinstance(body["prompt"], list) and body["model"] == "fake-model"  # token ids
    assert fake.headers[-1]["Authorization"] == f"Bearer {KEY}"
    assert KEY not in json.dumps(await status(client))  # never in status (settings included)

    failures = [
        (Script(mode="garbage"), "malformed event"),
        (Script(mode="shape"), "event without choices"),
        (Script(mode="close", pieces=["a", "b", "c"]), "closed the stream before it finished"),
        (Script(before_headers_s=TIMEOUT_S + 1.5), f"did not answer within {TIMEOUT_S:.0f} s"),
    ]
    for number, (script, message) in enumerate(failures):
        fake.script = script
        uri = (tmp_path / f"failing{number}.py").as_uri()
        open_document(client, uri, CODE)
        text, seconds = await timed_inline(client, uri)
        assert text == "" and seconds < TIMEOUT_S + 3, (script, seconds)
        report = await status(client)
        assert message in report["model"]["engine"]["engineError"], report["model"]
        assert message in report["model"]["error"]
        assert len(warnings_about(client, message)) == 1, client.log_messages
        fake.script = Script()  # the engine is back: the same request is asked again
        assert await inline(client, uri, 1, 12) == "foo(x)"
        assert (await status(client))["model"]["engine"]["engineError"] is None

    # [DONE] without a finish reason (another request interrupted it): empty, not cached.
    fake.script = Script(mode="interrupt", pieces=["foo", "(x", "y)"])
    uri = (tmp_path / "interrupted.py").as_uri()
    open_document(client, uri, CODE)
    asked = len(fake.completions())
    assert await inline(client, uri, 1, 12) == ""
    fake.script = Script()
    assert await inline(client, uri, 1, 12) == "foo(x)"
    assert len(fake.completions()) == asked + 2
    assert await inline(client, uri, 1, 12) == "foo(x)"  # a real answer is cached
    assert len(fake.completions()) == asked + 2

    # $/cancelRequest closes the stream: the engine sees the connection go away.
    fake.script = Script(pieces=["x"], endless=True, delay_s=0.01)
    fake.first_chunk.clear()
    uri = (tmp_path / "cancelled.py").as_uri()
    open_document(client, uri, CODE)
    pending = asyncio.ensure_future(
        client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 12), msg_id="endless-1"
        )
    )
    assert await asyncio.to_thread(fake.first_chunk.wait, 10), "the stream never started"
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="endless-1"))
    assert await asyncio.to_thread(fake.disconnected.wait, 2), "the engine kept streaming"
    with pytest.raises(Exception, match=r"(?i)cancel"):
        await pending
    fake.script = Script()
    other = (tmp_path / "after-cancel.py").as_uri()
    open_document(client, other, CODE)
    assert await inline(client, other, 1, 12) == "foo(x)"  # the server keeps answering


@pytest.mark.usefixtures("engine_env")
async def test_engine_down_then_back(
    servers: ServerProcesses, tokenizer_dir: Path, tmp_path: Path
) -> None:
    port = free_port()  # nobody listens: connection refused
    client = await servers.start(
        "neovim", openai_options(tokenizer_dir, f"http://127.0.0.1:{port}")
    )
    report = await wait_for_state(client, "ready", timeout=120)  # down is not a failed load
    refused = "not reachable (connection refused)"
    assert refused in report["model"]["error"]
    assert refused in report["model"]["engine"]["engineError"]
    uri = (tmp_path / "down.py").as_uri()
    open_document(client, uri, CODE)
    for _ in range(3):
        text, seconds = await timed_inline(client, uri)
        assert text == "" and seconds < 2.0
    assert len(warnings_about(client, refused)) == 1, client.log_messages  # one per outage

    engine = FakeEngine(port)  # it comes back on the same port
    try:
        assert await inline(client, uri, 1, 12) == "foo(x)"
        report = await status(client)
        assert report["model"]["error"] is None and report["model"]["engine"]["engineError"] is None
        assert any("answers again" in m.message for m in client.log_messages)
    finally:
        engine.close()


@pytest.mark.usefixtures("engine_env")
async def test_adapter_setting_goes_to_the_engine(
    servers: ServerProcesses, fake: FakeEngine, tokenizer_dir: Path, tmp_path: Path
) -> None:
    adapter = str(tmp_path / "adapters" / "run-1")
    options = {**openai_options(tokenizer_dir, fake.url), "adapter": adapter}
    client = await servers.start("neovim", options)
    model = (await wait_for_state(client, "ready", timeout=120))["model"]
    assert model["adapter"] == model["engine"]["adapter"] == adapter
    assert fake.adapters[-1]["lora_path"] == adapter
    uri = (tmp_path / "tuned.py").as_uri()
    open_document(client, uri, CODE)
    assert await inline(client, uri, 1, 12) == "foo(x)"
    assert fake.completions()[-1]["model"] == fake.adapters[-1]["lora_name"]  # names the LoRA


@pytest.mark.usefixtures("engine_env")
async def test_an_engine_refusing_the_adapter_serves_the_base_model(
    servers: ServerProcesses, fake: FakeEngine, tokenizer_dir: Path, tmp_path: Path
) -> None:
    fake.owned_by = "someone"  # a plain OpenAI-compatible server: no LoRA API
    options = {**openai_options(tokenizer_dir, fake.url), "adapter": str(tmp_path / "a")}
    client = await servers.start("neovim", options)
    report = await poll_status(
        client,
        lambda r: (
            r["model"]["state"] == "ready"
            and any(m.type == types.MessageType.Error for m in client.messages)
        ),
        timeout=120,
        waiting_for="ready and the adapter error",
    )
    assert report["model"]["adapter"] is None and report["model"]["engine"]["flavor"] == "openai"
    (error,) = [m.message for m in client.messages if m.type == types.MessageType.Error]
    assert "cannot load adapters at run time" in error and "(serving: the base model)" in error
    uri = (tmp_path / "base.py").as_uri()
    open_document(client, uri, CODE)
    assert await inline(client, uri, 1, 12) == "foo(x)"


async def test_openai_backend_without_endpoint_serves_nothing(
    servers: ServerProcesses, tokenizer_dir: Path
) -> None:
    client = await servers.start("neovim", {"model": str(tokenizer_dir), "backend": "openai"})
    report = await wait_for_state(client, "failed", timeout=60)
    assert "needs the endpoint setting" in report["model"]["error"]
    assert report["server"]["torchLoaded"] is False  # no in-process fallback was loaded
    warnings = [m.message for m in client.messages if m.type == types.MessageType.Warning]
    assert any("codellama.endpoint" in w for w in warnings), client.messages


# -- backend: llama.cpp, the real managed server (slow) ----------------------------------------


@pytest.mark.slow
async def test_managed_llama_cpp_serves_and_dies_with_the_server(
    servers: ServerProcesses, tmp_path: Path
) -> None:
    from model_runtime.llama_server import llama_cpp_available

    if not llama_cpp_available():
        pytest.fail("llama-cpp-python[server] is not installed: run scripts/build_llama_cpp.sh")
    options = {"backend": "llama.cpp", "maxNewTokens": 12, "debounceMs": 0, "watchDataset": False}
    client = await servers.start("neovim", options)
    report = await wait_for_state(client, "ready", "failed", timeout=600)
    model = report["model"]
    assert model["state"] == "ready", model
    engine = model["engine"]
    assert model["backend"] == engine["backend"] == "llama.cpp"
    assert engine["endpoint"].startswith("http://127.0.0.1:") and engine["engineError"] is None
    assert engine["flavor"] == "llama-cpp-python" and model["gguf"].endswith(".gguf")
    pid = engine["serverPid"]
    assert isinstance(pid, int) and pid != report["server"]["pid"]

    uri = (tmp_path / "calc.py").as_uri()
    code = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    \n"
    open_document(client, uri, code)
    text = await inline(client, uri, 5, 4)
    print(f"\nllama.cpp through the LSP server: {text!r}")
    assert "a * b" in text, text
    report = await status(client)
    assert report["completions"]["prefetch"]["prefills"] == 0  # one engine slot: no prefetch

    # Killed from outside (a crash, the OOM killer): started again on the same port, and the
    # next request (another position: nothing cached) is answered.
    endpoint = report["model"]["engine"]["endpoint"]
    os.kill(pid, signal.SIGKILL)
    await wait_gone(pid, zombie_ok=True)
    other = (tmp_path / "calc2.py").as_uri()
    open_document(client, other, code.replace("mul(a, b)", "sub(a, b)"))
    text = await inline(client, other, 5, 4)
    assert "a - b" in text, text
    engine = (await status(client))["model"]["engine"]
    assert engine["serverPid"] not in (None, pid) and engine["endpoint"] == endpoint, engine
    pid = engine["serverPid"]

    # Another model setting reloads: a new server, the old one stopped.
    client.protocol.notify(
        types.WORKSPACE_DID_CHANGE_CONFIGURATION,
        types.DidChangeConfigurationParams(
            settings={"codellama": {**options, "model": "bundled:qwen2.5-coder-0.5b"}}
        ),
    )
    report = await poll_status(
        client,
        lambda r: (
            r["model"]["state"] == "ready"
            and r["model"].get("engine", {}).get("serverPid") not in (None, pid)
        ),
        timeout=600,
        waiting_for="the reloaded llama.cpp server",
    )
    await wait_gone(pid)
    pid = report["model"]["engine"]["serverPid"]

    await asyncio.wait_for(client.shutdown_session(), 30)
    await wait_gone(pid)


async def wait_gone(pid: int, timeout: float = 10, *, zombie_ok: bool = False) -> None:
    """Fail unless process ``pid`` ends within ``timeout`` seconds (``zombie_ok``: or is a
    zombie its parent has not reaped yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(pid, 0)
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (ProcessLookupError, FileNotFoundError):
            return
        if zombie_ok and stat.rsplit(")", 1)[1].split()[0] == "Z":
            return
        assert time.monotonic() < deadline, f"the llama.cpp server (pid {pid}) outlived its use"
        await asyncio.sleep(0.1)


@pytest.mark.slow
def test_a_gguf_file_is_a_llama_cpp_model() -> None:
    """``model`` = a path to a ``.gguf`` file: served as it is, its tokenizer read from it."""
    from lsp_server.remote_engine import gguf_for
    from model_runtime.openai_engine import remote_loaded
    from model_runtime.spec import bundled_gguf_path

    gguf = bundled_gguf_path("qwen2.5-coder-0.5b")
    assert gguf_for(str(gguf)) == gguf
    loaded = remote_loaded(str(gguf))
    assert loaded.template.name == "qwen" and loaded.model is None
