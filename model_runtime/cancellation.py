"""Cancellation that reaches inside the model: a forward pre-hook on every decoder layer.

The engine checks its request's ``threading.Event`` before every forward pass, but one pass of a
long prefill chunk can take a while; so :class:`LayerCancel` also registers a pre-hook on each
decoder layer (once per layer, kept in a weak set) that raises :class:`Cancelled` when the
active event is set: a cancelled request stops within one layer. The engine then trims the
KV cache back to the last complete pass (:meth:`model_runtime.kv_cache.PrefixCache.trim`).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

__all__ = ["Cancelled", "LayerCancel"]


class Cancelled(Exception):
    """The active request's cancel event was set (between passes or between layers)."""


class LayerCancel:
    """Raises :class:`Cancelled` inside the model once :attr:`event` is set."""

    def __init__(self) -> None:
        self.event: threading.Event | None = None
        """The cancel event of the request running now (``None`` between requests)."""
        self._hooked: weakref.WeakSet[Any] = weakref.WeakSet()

    def install(self, model: Any) -> None:
        """Hook every decoder layer of ``model`` not hooked yet (a new adapter may add some)."""
        for module in model.modules():
            if type(module).__name__.endswith("DecoderLayer") and module not in self._hooked:
                module.register_forward_pre_hook(self._hook)
                self._hooked.add(module)

    @staticmethod
    def check(cancel: threading.Event | None) -> None:
        """Raise :class:`Cancelled` if ``cancel`` is set (between forward passes)."""
        if cancel is not None and cancel.is_set():
            raise Cancelled

    def _hook(self, module: Any, args: Any) -> None:
        self.check(self.event)
