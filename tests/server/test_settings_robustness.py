"""Settings cannot poison the server: a bad value is named and replaced by its default while the
rest applies, a cleared setting takes effect, and a failed adapter swap leaves what was served
(and reports what really is)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pytest_lsp import LanguageClient
from server_helpers import StartServer, status, wait_for_state

from lsp_server.settings import merge_settings, parse_settings

# -- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("logFile", "a\u0000b.log"),
        ("stateDir", "/tmp/a\u0000b"),
        ("adapter", "x\u0000"),
        ("model", "m\u0000"),
        ("logFile", "~no-such-user-here/x.log"),
    ],
)
def test_a_bad_path_is_named_and_the_rest_applies(key: str, value: str) -> None:
    settings, errors = parse_settings({key: value, "maxNewTokens": 7, "debounceMs": 5})
    assert [e.name for e in errors] == [key]
    assert settings.max_new_tokens == 7 and settings.debounce_ms == 5
    default = parse_settings({})[0]
    assert settings == parse_settings({"maxNewTokens": 7, "debounceMs": 5})[0]
    assert default.max_new_tokens == 64


def test_a_later_null_clears_what_an_earlier_source_set() -> None:
    init = {"adapter": "/a", "maxNewTokens": 12, "logFile": "/tmp/x.log"}
    pulled = {"codellama": {"adapter": None, "maxNewTokens": None}}
    settings, errors = parse_settings(merge_settings(init, None, pulled))
    assert errors == []
    assert settings.adapter is None  # cleared
    assert settings.max_new_tokens == 64  # null on a non-optional setting: its default
    assert settings.log_file == "/tmp/x.log"  # absent keys keep the earlier value


# -- end to end --------------------------------------------------------------------------------


async def _settled_settings(client: LanguageClient, key: str, value: Any) -> dict[str, Any]:
    for _ in range(400):
        report = await status(client)
        if report["settings"][key] == value:
            return report
        await asyncio.sleep(0.05)
    raise AssertionError(f"{key} never became {value!r}: {report['settings']}")


async def test_one_bad_log_file_disables_nothing_else(
    start_server: StartServer, tiny_model: Path
) -> None:
    bad = "a\u0000b.log"
    options = {"model": str(tiny_model), "logFile": bad, "maxNewTokens": 7}
    client = await start_server(options, configuration=options)
    report = await wait_for_state(client, "ready", "failed")
    assert report["model"]["state"] == "ready"  # the model loads despite the bad value
    report = await _settled_settings(client, "maxNewTokens", 7)
    assert report["settings"]["logFile"] is None
    warnings = [m.message for m in client.messages if m.type == types.MessageType.Warning]
    assert any("codellama.logFile" in m and "NUL" in m for m in warnings), warnings
    # A push with the same bad value: every other value in it still applies.
    pushed = {"logFile": bad, "maxNewTokens": 9, "debounceMs": 3}
    client.set_configuration({**options, **pushed}, section="codellama")
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codellama": pushed})
    )
    report = await _settled_settings(client, "maxNewTokens", 9)
    assert report["settings"]["debounceMs"] == 3


@pytest.fixture(scope="session")
def adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A LoRA adapter that fits the tiny model, and one that passes every check before loading
    but cannot be applied (its target modules do not exist): it fails after the old adapter was
    unloaded."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("adapters")
    good = root / "good"
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])
    get_peft_model(model, config).save_pretrained(good)
    bad = root / "misfit"
    bad.mkdir()
    adapter_config = json.loads((good / "adapter_config.json").read_text())
    adapter_config["target_modules"] = ["no_such_projection"]
    (bad / "adapter_config.json").write_text(json.dumps(adapter_config))
    (bad / "adapter_model.safetensors").write_bytes(
        (good / "adapter_model.safetensors").read_bytes()
    )
    return good, bad


async def _use_adapter(client: LanguageClient, path: str) -> dict[str, Any]:
    return dict(
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="codellama.useAdapter", arguments=[{"path": path}])
        )
    )


async def test_a_failed_swap_leaves_what_was_served(
    start_server: StartServer, tiny_model: Path, adapters: tuple[Path, Path]
) -> None:
    good, misfit = adapters
    options = {"model": str(tiny_model), "adapter": str(good)}
    client = await start_server(options, configuration=options)
    report = await wait_for_state(client, "ready", "failed")
    assert report["model"]["state"] == "ready" and report["model"]["adapter"] == str(good)
    # Not an adapter directory: refused before anything changes.
    with pytest.raises(JsonRpcInvalidParams, match="not an adapter directory"):
        await _use_adapter(client, "/etc")
    report = await status(client)
    assert report["features"]["model"]["adapterOverride"] is None
    assert report["settings"]["adapter"] == str(good)
    # Fails after the old adapter was unloaded: the old one is served again, and reported.
    result = await _use_adapter(client, str(misfit))
    assert result["ok"] is False and result["requested"] == str(misfit)
    assert result["adapter"] == str(good) and result["state"] == "ready"
    report = await status(client)
    assert report["model"]["adapter"] == str(good)
    assert report["features"]["finetune"]["servedAdapter"] == str(good)  # the gate's baseline
    assert report["features"]["model"]["adapterOverride"] is None
    errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
    assert any(str(misfit) in m and f"serving: {good}" in m for m in errors), errors
    # A later settings change does not bring the failed adapter back.
    client.set_configuration({**options, "maxNewTokens": 5}, section="codellama")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    report = await _settled_settings(client, "maxNewTokens", 5)
    assert report["settings"]["adapter"] == str(good) and report["model"]["adapter"] == str(good)
    # Clearing the adapter setting (null, as VS Code sends it) serves the base model now.
    client.set_configuration({**options, "adapter": None}, section="codellama")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    for _ in range(400):
        report = await status(client)
        if report["model"]["adapter"] is None and report["model"]["state"] == "ready":
            break
        await asyncio.sleep(0.05)
    assert report["model"]["adapter"] is None, report["model"]
    assert report["settings"]["adapter"] is None
