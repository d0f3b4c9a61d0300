"""``codellama.status``: what is served, load state, latency percentiles and tokens/s."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from lsp_server import __version__
from lsp_server.feature import Feature, command
from lsp_server.settings import as_json

if TYPE_CHECKING:
    from lsp_server.completion_service import CompletionService
    from lsp_server.model_host import ModelHost
    from lsp_server.server import CodeLlamaServer

__all__ = ["StatusFeature"]


class StatusFeature(Feature):
    """Reports the server's state as one JSON object (clients print or render it)."""

    name = "status"

    def __init__(
        self, server: CodeLlamaServer, host: ModelHost, completions: CompletionService
    ) -> None:
        super().__init__(server)
        self.host = host
        self.completions = completions

    @command("codellama.status")
    def status_command(self, *args: Any) -> dict[str, Any]:
        """Model, device, dtype, adapter, load state, latency p50/p95, tokens/s (args ignored)."""
        server = self.server
        features: dict[str, Any] = {}
        for name, feature in server.features.items():
            if feature is self:
                continue
            try:
                if (section := feature.status()) is not None:
                    features[name] = section
            except Exception as exc:  # one feature's status must not hide the rest
                features[name] = {"error": f"{type(exc).__name__}: {exc}"}
        return {
            "server": {
                "version": __version__,
                "pid": os.getpid(),
                "torchLoaded": "torch" in sys.modules,
                "torchAtInitialize": server.torch_at_initialize,
            },
            "model": self.host.status(),
            "completions": self.completions.stats.summary(),
            "settings": as_json(server.settings),
            "features": features,
        }
