"""The OpenAI-compatible engine backend against a fake engine (fast) and llama.cpp (slow).

The fake engine (``tests/engine_fake.py``) is a stdlib HTTP server in a thread that streams
server-sent events the way llama-cpp-python's and vLLM's servers do, records every request, and
notices when the client goes away (a write fails): so "cancel closes the stream" is checked on
the engine side. It can also be down, silent, return garbage or close mid-stream.

The slow tests start the real llama.cpp server (llama-cpp-python, built by
``scripts/build_llama_cpp.sh``) on the bundled Qwen2.5-Coder GGUF.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from engine_fake import FakeEngine, Script, tiny_qwen_tokenizer

from model_runtime.engine import CompletionRequest
from model_runtime.llama_server import free_port
from model_runtime.openai_client import Endpoint
from model_runtime.openai_engine import OpenAIEngine, remote_loaded

KEY = "sk-test-3b1f0c"
"""The fake engine's API key (given to the engine through an environment variable)."""


@pytest.fixture(scope="module")
def qwen_tokenizer() -> Any:
    corpus = [
        "def add(a, b):\n    return a + b\n",
        "class Point:\n    def __init__(self, x, y):\n        self.x = x\n",
        "for item in items:\n    print(item)\n",
    ] * 20
    return tiny_qwen_tokenizer(corpus)


@pytest.fixture
def fake() -> Iterator[FakeEngine]:
    with FakeEngine() as server:
        yield server


def make_engine(tokenizer: Any, url: str, **options: Any) -> OpenAIEngine:
    options.setdefault("first_byte_timeout_s", 2.0)
    options.setdefault("read_timeout_s", 1.0)
    return OpenAIEngine(
        remote_loaded("tiny-qwen", tokenizer=tokenizer),
        endpoint=url,
        engine_model="fake-model",
        api_key_env="CODELLAMA_TEST_KEY",
        **options,
    )


REQUEST = CompletionRequest(
    "src/app.py", "def main():\n    value = ", "\n    return value\n", max_new_tokens=8
)


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODELLAMA_TEST_KEY", KEY)


def test_token_ids_streaming_greedy_and_key(fake: FakeEngine, qwen_tokenizer: Any) -> None:
    engine = make_engine(qwen_tokenizer, fake.url)
    assert engine.loaded.template.name == "qwen"
    result = engine.complete(REQUEST)
    body = fake.requests[-1]
    assert body["prompt"] == engine.prompt_for(REQUEST).input_ids  # vLLM: token ids
    assert body["stream"] is True and body["temperature"] == 0.0 and body["max_tokens"] == 8
    assert body["model"] == "fake-model"
    assert set(body["stop_token_ids"]) == engine.loaded.template.stop_ids
    assert fake.headers[-1]["Authorization"] == f"Bearer {KEY}"
    assert result.text == "foo(x)" and result.stop_reason == "stop_rule"
    assert result.raw_text.startswith("foo(x)") and result.error == ""
    assert result.prompt_tokens == len(body["prompt"])
    assert engine.cached_tokens == len(body["prompt"])
    again = engine.complete(REQUEST)
    assert again.reused_tokens == len(body["prompt"])  # the engine's prefix cache would hit
    assert engine.status()["tokenPrompts"] is True


def test_text_prompt_for_llama_cpp_python(fake: FakeEngine, qwen_tokenizer: Any) -> None:
    fake.owned_by = "me"  # what llama-cpp-python's /v1/models says
    engine = make_engine(qwen_tokenizer, fake.url)
    engine.complete(REQUEST)
    body = fake.requests[-1]
    ids = engine.prompt_for(REQUEST).input_ids
    assert isinstance(body["prompt"], str) and "<|fim_middle|>" in body["prompt"]
    assert qwen_tokenizer.encode(body["prompt"], add_special_tokens=False) == ids
    assert body["repeat_penalty"] == 1.0  # its default 1.1 would change greedy output
    assert engine.status()["flavor"] == "llama-cpp-python"
    assert engine.status()["textPromptMismatches"] == 0


MID_WORD = CompletionRequest("src/app.py", "for item in ite", "\n", max_new_tokens=8)
"""A cursor inside a word: token healing backs the prompt off before `` ite``."""


def test_token_healing_through_a_grammar(fake: FakeEngine, qwen_tokenizer: Any) -> None:
    """llama.cpp engines: the prompt ends before the healed characters, a grammar makes the
    output start with them, and the completion is what follows them (as in process)."""
    fake.owned_by = "me"
    engine = make_engine(qwen_tokenizer, fake.url)
    heal = engine._heal_text(MID_WORD.prefix)
    assert heal == " ite", heal  # this tokenizer's word boundary
    fake.script = Script(pieces=[" it", "ems", ":", "\n"])
    result = engine.complete(MID_WORD)
    body = fake.requests[-1]
    healed_prompt = engine.prompt_for(MID_WORD).input_ids
    assert qwen_tokenizer.encode(body["prompt"], add_special_tokens=False) == healed_prompt
    assert body["prompt"].split("<|fim_suffix|>")[0].endswith(MID_WORD.prefix[: -len(heal)])
    assert body["grammar"].startswith(f'root ::= "{heal}"'), body["grammar"]
    assert body["max_tokens"] > MID_WORD.max_new_tokens  # healing steps are not counted
    assert result.healed == heal and result.heal_tokens == 2
    assert result.raw_text.startswith(heal) and result.text == "ms:", result
    assert engine.status()["tokenHealing"] is True


def test_no_token_healing_where_the_engine_takes_no_grammar(
    fake: FakeEngine, qwen_tokenizer: Any
) -> None:
    """vLLM, a plain OpenAI server, or ``token_healing=False``: the prompt as the user typed it."""
    for owned_by, options in (("vllm", {}), ("someone", {}), ("me", {"token_healing": False})):
        fake.owned_by = owned_by
        engine = make_engine(qwen_tokenizer, fake.url, **options)
        fake.script = Script(pieces=["ms:", "\n"])
        result = engine.complete(MID_WORD)
        body = fake.requests[-1]
        assert "grammar" not in body and result.healed == "", owned_by
        assert result.text == "ms:" and engine.status()["tokenHealing"] is False


def test_healing_cut_short_gives_nothing(fake: FakeEngine, qwen_tokenizer: Any) -> None:
    """A stream that ends before the healed characters are re-created completes nothing."""
    fake.owned_by = "me"
    engine = make_engine(qwen_tokenizer, fake.url)
    heal = engine._heal_text(MID_WORD.prefix)
    assert heal == " ite", heal
    fake.script = Script(pieces=[" it"], finish="length")
    result = engine.complete(MID_WORD)
    assert result.text == "" and result.error == ""


def test_no_key_no_header(
    fake: FakeEngine, qwen_tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODELLAMA_TEST_KEY")
    make_engine(qwen_tokenizer, fake.url).complete(REQUEST)
    assert all("Authorization" not in h for h in fake.headers)


def test_stop_rule_closes_the_stream(fake: FakeEngine, qwen_tokenizer: Any) -> None:
    fake.script = Script(pieces=["foo", "(x)", "\n", "bar"], endless=True, delay_s=0.01)
    engine = make_engine(qwen_tokenizer, fake.url)
    result = engine.complete(dataclasses_replace(REQUEST, multiline=False))
    assert result.text == "foo(x)" and result.stop_reason == "stop_rule"
    assert fake.disconnected.wait(2.0), "the engine kept streaming after our stop rule fired"


def test_max_tokens_finish(fake: FakeEngine, qwen_tokenizer: Any) -> None:
    fake.script = Script(pieces=["a", "b"], finish="length")
    result = make_engine(qwen_tokenizer, fake.url).complete(REQUEST)
    assert (result.text, result.stop_reason, result.tokens) == ("ab", "max_tokens", 2)


def test_interrupted_stream_is_not_a_completion(fake: FakeEngine, qwen_tokenizer: Any) -> None:
    fake.script = Script(mode="interrupt", pieces=["foo", "(x", "y)"])
    result = make_engine(qwen_tokenizer, fake.url).complete(REQUEST)
    assert (result.text, result.stop_reason, result.error) == ("", "interrupted", "")


def test_cancel_closes_the_stream(fake: FakeEngine, qwen_tokenizer: Any) -> None:
    fake.script = Script(pieces=["x"], endless=True, delay_s=0.005)
    engine = make_engine(qwen_tokenizer, fake.url)
    cancel = threading.Event()

    def cancel_after_first_chunk() -> None:
        fake.first_chunk.wait(5)
        cancel.set()

    threading.Thread(target=cancel_after_first_chunk, daemon=True).start()
    started = time.perf_counter()
    result = engine.complete(REQUEST, cancel)
    cancelled_at = time.perf_counter()
    assert result.cancelled and result.text == "" and result.stop_reason == "cancelled"
    assert cancelled_at - started < 1.0
    assert fake.disconnected.wait(1.0), "the fake engine never saw the client go away"
    sent = fake.chunks_sent
    time.sleep(0.1)
    assert fake.chunks_sent == sent  # nothing more was generated for us


def test_cancel_while_engine_prefills(fake: FakeEngine, qwen_tokenizer: Any) -> None:
    fake.script = Script(before_headers_s=1.5)
    engine = make_engine(qwen_tokenizer, fake.url, first_byte_timeout_s=10.0)
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    started = time.perf_counter()
    result = engine.complete(REQUEST, cancel)
    assert result.stop_reason == "cancelled" and time.perf_counter() - started < 0.5
    assert engine.last_error is None


def test_already_cancelled_sends_nothing(fake: FakeEngine, qwen_tokenizer: Any) -> None:
    cancel = threading.Event()
    cancel.set()
    result = make_engine(qwen_tokenizer, fake.url).complete(REQUEST, cancel)
    assert result.stop_reason == "cancelled" and fake.requests == []


@pytest.mark.parametrize(
    ("script", "message"),
    [
        (Script(mode="garbage"), "malformed event"),
        (Script(mode="close", pieces=["a", "b", "c"], delay_s=0.01), "closed the stream before"),
        (Script(before_headers_s=3.0), "did not answer within 1 s"),
        (Script(pieces=["a", "b"], delay_s=2.5), "sent nothing for 1 s"),
        (Script(mode="status", status=500), "HTTP 500 (model exploded)"),
        (Script(mode="status", status=401), "check the API key"),
    ],
    ids=[
        "garbage",
        "mid-stream-close",
        "silent-before-answer",
        "silent-mid-stream",
        "http-500",
        "http-401",
    ],
)
def test_engine_failures_are_one_clear_line(
    fake: FakeEngine,
    qwen_tokenizer: Any,
    caplog: pytest.LogCaptureFixture,
    script: Script,
    message: str,
) -> None:
    fake.script = script
    engine = make_engine(qwen_tokenizer, fake.url, first_byte_timeout_s=1.0, read_timeout_s=1.0)
    caplog.set_level(logging.DEBUG, logger="model_runtime")
    started = time.perf_counter()
    result = engine.complete(REQUEST)
    assert time.perf_counter() - started < 2.5  # never a hang
    assert result.text == "" and result.stop_reason == "error"
    assert message in result.error and "\n" not in result.error
    assert KEY not in caplog.text and KEY not in result.error
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and message in warnings[0].getMessage()
    fake.script = Script()  # the engine recovers
    assert engine.complete(REQUEST).text == "foo(x)"
    assert engine.last_error is None and "answers again" in caplog.text


def test_engine_down_then_back(qwen_tokenizer: Any, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    engine = make_engine(qwen_tokenizer, f"http://127.0.0.1:{port}")
    caplog.set_level(logging.INFO, logger="model_runtime")
    first, second = engine.complete(REQUEST), engine.complete(REQUEST)
    for result in (first, second):
        assert (
            result.stop_reason == "error" and "not reachable (connection refused)" in result.error
        )
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # one line per outage, not one per keystroke
    assert engine.prefill(REQUEST).stop_reason == "error"
    assert engine.status()["engineError"] == first.error
    server = FakeEngine(port)
    try:
        assert engine.complete(REQUEST).text == "foo(x)"
        assert engine.status()["engineError"] is None
    finally:
        server.close()


def test_prefill_warms_the_engine_cache(fake: FakeEngine, qwen_tokenizer: Any) -> None:
    engine = make_engine(qwen_tokenizer, fake.url)
    result = engine.prefill(REQUEST)
    body = fake.requests[-1]
    assert result.stop_reason == "prefill" and body["max_tokens"] == 1 and body["stream"] is False
    assert engine.cached_tokens == result.prompt_tokens == len(body["prompt"])


def test_vllm_adapter_then_base(fake: FakeEngine, qwen_tokenizer: Any, tmp_path: Any) -> None:
    engine = make_engine(qwen_tokenizer, fake.url)
    adapter = str(tmp_path / "adapter")
    engine.set_adapter(adapter)
    assert fake.adapters[-1]["lora_path"] == adapter and engine.loaded.adapter == adapter
    engine.complete(REQUEST)
    assert fake.requests[-1]["model"] == fake.adapters[-1]["lora_name"]  # requests name the LoRA
    engine.set_adapter(None)
    engine.complete(REQUEST)
    assert fake.requests[-1]["model"] == "fake-model" and engine.loaded.adapter is None


def test_adapter_refused_without_a_loader(fake: FakeEngine, qwen_tokenizer: Any) -> None:
    from model_runtime.loaded import ModelLoadError

    fake.owned_by = "me"
    engine = make_engine(qwen_tokenizer, fake.url)
    with pytest.raises(ModelLoadError, match="cannot load adapters at run time"):
        engine.set_adapter("/some/adapter")
    assert engine.loaded.adapter is None


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://x", "http:// or https://"),
        ("http://user:pw@host:8000", "do not put credentials"),
        ("http://", "no host"),
        ("http://h:99999", "out of range"),
    ],
)
def test_bad_endpoints(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        Endpoint.parse(url)


def test_endpoint_base_path() -> None:
    assert str(Endpoint.parse("https://gpu.example/team/v1/")) == "https://gpu.example:443/team"


def dataclasses_replace(request: CompletionRequest, **changes: Any) -> CompletionRequest:
    import dataclasses

    return dataclasses.replace(request, **changes)


# -- the real llama.cpp server on the bundled Qwen GGUF (slow) ------------------------------------

FIM_CASES = [
    CompletionRequest(
        "calc.py",
        "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n",
        "\n",
        max_new_tokens=16,
    ),
    CompletionRequest(
        "files.py",
        'import os\n\n\ndef list_files(path):\n    """The names of the files in path."""\n',
        "\n",
        max_new_tokens=24,
    ),
    CompletionRequest(
        "squares.py",
        "def squares(n):\n    result = []\n    for i in range(n):\n",
        "\n    return result\n",
        max_new_tokens=24,
    ),
]


def _require_llama_cpp() -> None:
    """The real-engine tests fail (never skip) without the engine: ``make test`` builds it."""
    from model_runtime.llama_server import llama_cpp_available

    if not llama_cpp_available():
        pytest.fail("llama-cpp-python[server] is not installed: run scripts/build_llama_cpp.sh")


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _require_llama_cpp()
    from model_runtime.llama_server import LlamaServer
    from model_runtime.spec import bundled_gguf_path

    log = tmp_path_factory.mktemp("llama") / "server.log"
    server = LlamaServer(bundled_gguf_path("qwen2.5-coder-0.5b"), n_threads=2, log_path=log)
    with server:
        yield server


@pytest.fixture(scope="module")
def qwen_remote() -> Any:
    from model_runtime.spec import QWEN_CODER_MODEL

    return remote_loaded(QWEN_CODER_MODEL)


@pytest.mark.slow
def test_real_llama_cpp_fim_completion(llama: Any, qwen_remote: Any) -> None:
    engine = llama.engine(qwen_remote)
    assert engine.resolved_flavor() == "llama-cpp-python" and not engine.token_prompts
    request = FIM_CASES[0]
    result = engine.complete(request)
    assert result.error == "" and result.stop_reason in {"eos", "stop_rule"}
    assert result.text.strip() == "return a * b", result
    # The text prompt is our token-exact prompt: llama.cpp's own tokenizer gives our ids back.
    ids = engine.prompt_for(request).input_ids
    text = engine._text_prompt(ids)
    served = llama.client().post_json("/extras/tokenize", {"input": text})["tokens"]
    assert served == ids
    # Without the token the managed server refuses (only we can use it).
    from model_runtime.openai_client import EngineUnavailable, OpenAIClient

    with pytest.raises(EngineUnavailable, match="HTTP 401"):
        OpenAIClient(llama.endpoint).post_json("/extras/tokenize", {"input": "x"})


@pytest.mark.slow
def test_real_llama_cpp_stops_decoding_on_cancel(llama: Any) -> None:
    """Engine-side: closing the stream stops llama.cpp within about one token."""
    from model_runtime.llama_server import tokens_after_cancel

    extra = tokens_after_cancel(llama, after=4, new=24)
    print(f"\nllama.cpp evaluated {extra} tokens after the cancel (of 20 it had left)")
    assert 0 <= extra <= 2


@pytest.mark.slow
def test_managed_server_dies_with_its_parent(tmp_path: Any) -> None:
    """kill -9 of the process that started the server: its stdin watchdog ends it."""
    import os
    import signal
    import subprocess
    import sys

    _require_llama_cpp()
    script = (
        "from model_runtime.llama_server import LlamaServer\n"
        "from model_runtime.spec import bundled_gguf_path\n"
        "s = LlamaServer(bundled_gguf_path('qwen2.5-coder-0.5b'), n_threads=1).start()\n"
        "print(s.pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(child, signal.SIGKILL)
    raise AssertionError("the llama.cpp server outlived its parent")


HEAL_CASES = [
    CompletionRequest(
        "paths.py", "import os\n\n\ndef config_path(name):\n    return os.path.jo", "\n",
        max_new_tokens=16,
    ),
    CompletionRequest(
        "totals.py", "def total(values):\n    result = 0\n    for value in val", "\n",
        max_new_tokens=16,
    ),
]  # fmt: skip
"""Cursors inside a word: token healing re-creates ``jo`` / ``val`` through the grammar."""


@pytest.mark.slow
def test_real_llama_cpp_heals_tokens(llama: Any, qwen_remote: Any) -> None:
    """The grammar really constrains llama.cpp: the output re-creates the removed characters
    and the completion continues the word the user is typing."""
    engine = llama.engine(qwen_remote)
    assert engine.heals
    paths, totals = (engine.complete(request) for request in HEAL_CASES)
    print(f"\nhealed: {paths.healed!r} → {paths.text!r}; {totals.healed!r} → {totals.text!r}")
    for result, heal in ((paths, "jo"), (totals, "val")):
        assert result.error == "" and result.healed.endswith(heal), result
        assert result.raw_text.startswith(result.healed), result
    assert paths.text.startswith("in("), paths
    assert totals.text.startswith("ues"), totals


@pytest.mark.slow
def test_real_llama_cpp_matches_in_process(llama: Any, qwen_remote: Any) -> None:
    """Same prompts, greedy, same GGUF, token healing on both sides: llama.cpp (Q4_K_M
    kernels, healing through a grammar) vs transformers (healing in the decode loop)."""
    from model_runtime.engine import Engine
    from model_runtime.loader import load_model
    from model_runtime.spec import QWEN_CODER_MODEL

    remote = llama.engine(qwen_remote)
    local = Engine(load_model(QWEN_CODER_MODEL))
    rows = []
    for request in [*FIM_CASES, *HEAL_CASES]:
        assert remote.prompt_for(request).input_ids == local.prompt_for(request).input_ids
        ours, theirs = local.complete(request), remote.complete(request)
        assert ours.healed == theirs.healed
        rows.append((request.path, ours.text, theirs.text))
    print("\n" + "\n".join(f"{p}: in-process {a!r} | llama.cpp {b!r}" for p, a, b in rows))
    assert all(a.strip() and b.strip() for _, a, b in rows)
    assert sum(a == b for _, a, b in rows) >= 3, rows
