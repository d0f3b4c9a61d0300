"""The feature hook API: one failing feature never takes the others (or the server) down."""

from __future__ import annotations

from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError

from lsp_server.feature import Feature, command, lsp
from lsp_server.setup import FEATURES, _hook, command_argument, create_server


class Exploding(Feature):
    name = "exploding"

    @lsp(types.TEXT_DOCUMENT_HOVER)
    def hover(self, params: Any) -> Any:
        raise RuntimeError("boom")

    @command("test.explode")
    def explode(self, *args: Any) -> Any:
        raise ValueError("bad")

    def settings_changed(self, old: Any, new: Any) -> None:
        raise RuntimeError("hook boom")


class Recorder(Feature):
    name = "recorder"
    seen: list[str]

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.seen = []

    def settings_changed(self, old: Any, new: Any) -> None:
        self.seen.append("settings")

    @command("test.echo")
    async def echo(self, *args: Any) -> Any:
        return command_argument(args)


class Greedy(Feature):
    """Claims a method another feature owns and one setup owns: both claims are ignored."""

    @lsp(types.TEXT_DOCUMENT_HOVER)
    def hover(self, params: Any) -> Any:
        return "mine"

    @lsp(types.INITIALIZE)
    def initialize_again(self, params: Any) -> Any:
        return None


class BrokenInit(Feature):
    def __init__(self, server: Any) -> None:
        raise RuntimeError("cannot start")


def test_broken_features_are_left_out_and_others_register() -> None:
    server = create_server(
        ["no.such.module:Nope", BrokenInit, Exploding, Recorder, Greedy, *FEATURES]
    )
    assert set(server.features) >= {"exploding", "recorder", "model", "completion", "status"}
    fm = server.protocol.fm
    assert types.TEXT_DOCUMENT_INLINE_COMPLETION in fm.features
    assert {"codellama.status", "codellama.useAdapter", "test.echo"} <= set(fm.commands)
    assert fm.features[types.TEXT_DOCUMENT_HOVER].__name__ == "exploding.hover"


async def test_failing_handler_answers_an_error_naming_the_feature() -> None:
    server = create_server([Exploding, Recorder])
    fm = server.protocol.fm
    with pytest.raises(JsonRpcInternalError, match=r"exploding\.hover failed: RuntimeError: boom"):
        await fm.features[types.TEXT_DOCUMENT_HOVER](None)
    with pytest.raises(JsonRpcInternalError, match=r"exploding\.explode"):
        await fm.commands["test.explode"]()
    assert await fm.commands["test.echo"]() == {}
    assert await fm.commands["test.echo"]({"a": 1}) == {"a": 1}
    assert await fm.commands["test.echo"]("path") == {"value": "path"}


async def test_failing_hook_does_not_stop_the_other_features() -> None:
    server = create_server([Exploding, Recorder])
    await _hook(server, "settings_changed", None, server.settings)
    assert server.features["recorder"].seen == ["settings"]  # type: ignore[attr-defined]


def test_importing_the_server_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, lsp_server.setup as s; s.create_server(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_command_argument_rejects_non_objects() -> None:
    with pytest.raises(ValueError, match="one JSON object"):
        command_argument([3])
    assert command_argument([None]) == {}


class NeedsServices(Feature):
    name = "needs"

    def __init__(self, server: Any, model: Any, dataset: Any, host: Any) -> None:
        super().__init__(server)
        self.got = (model, dataset, host)


class NeedsNothingKnown(Feature):
    name = "unknown-service"

    def __init__(self, server: Any, telescope: Any) -> None:
        super().__init__(server)


def test_features_receive_the_services_they_name_and_unknown_ones_are_refused() -> None:
    server = create_server([NeedsServices, NeedsNothingKnown, *FEATURES])
    services = server.services
    feature = server.features["needs"]
    assert feature.got == (services.model, services.dataset, services.host)  # type: ignore[attr-defined]
    assert "unknown-service" not in server.features
    # the built-in features share the one set of services
    assert server.features["finetune"].model is services.model  # type: ignore[attr-defined]
    assert server.features["finetune"].dataset is services.dataset  # type: ignore[attr-defined]
    assert server.features["dataset"].dataset is services.dataset  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="telescope"):
        services.for_feature(NeedsNothingKnown)
