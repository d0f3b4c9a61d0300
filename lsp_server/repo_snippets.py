"""Repository context for completions: snippets of other dataset files for a cursor.

The :class:`RepoContextSource` is part of the completion service
(``CompletionService.repo_context``); the dataset service attaches the index.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from lsp_server.blocks import block_key
from lsp_server.settings import Settings

if TYPE_CHECKING:
    from model_runtime.retrieval import RepoIndex, Snippet

__all__ = ["RepoContextSource"]

logger = logging.getLogger(__name__)


class RepoContextSource:
    """Snippets of other dataset files for a cursor, stable while the user stays in one block.

    The index (:class:`model_runtime.retrieval.RepoIndex`) is attached by the dataset
    feature once the watcher has synced; until then, with ``repoContext`` off, or for an empty
    index, no snippets. Retrieval runs again only when the cursor's enclosing top-level block
    (:func:`block_key`) or the file changes, so the context block at the start of the prompt
    keeps its tokens (and the KV cache) while the user types.
    """

    def __init__(self) -> None:
        self.index: RepoIndex | None = None
        self.name = ""
        """Repository name for Qwen's ``<|repo_name|>`` line (the workspace folder's name)."""
        self._cached: dict[str, tuple[str, tuple[Snippet, ...]]] = {}
        self.last: dict[str, Any] | None = None
        """Where the snippets of the last request came from (for ``codellama.status``)."""
        self.retrievals = 0
        self.retrieval_ms: list[float] = []

    def attach(self, index: RepoIndex | None, name: str = "") -> None:
        """Serve snippets from ``index`` (``None`` detaches it)."""
        self.index, self.name = index, name
        self._cached.clear()

    def snippets(
        self,
        text: str,
        offset: int,
        path: str,
        language: str | None,
        context: Any,
        settings: Settings,
    ) -> tuple[Snippet, ...]:
        """Snippets for the cursor (most relevant first); cached per block of the file."""
        index = self.index
        if not settings.repo_context or index is None or settings.repo_context_tokens <= 0:
            return ()
        index.touch(path)
        key = block_key(text, offset)
        cached = self._cached.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        from model_runtime.retrieval import context_for

        started = time.perf_counter()
        found = tuple(context_for(index, path, context.prefix, context.suffix, language=language))
        elapsed = (time.perf_counter() - started) * 1000
        self.retrievals += 1
        self.retrieval_ms = [*self.retrieval_ms[-99:], elapsed]
        if len(self._cached) > 64:
            self._cached.clear()
        self._cached[path] = (key, found)
        self.last = {
            "path": path,
            "block": key,
            "retrievalMs": round(elapsed, 2),
            "snippets": [s.as_json() for s in found],
        }
        if found:
            logger.debug("repository context for %s: %s", path, [s.as_json() for s in found])
        return found

    def forget(self, paths: set[str] | None = None) -> None:
        """Retrieve again next time for cursors in ``paths`` or whose snippets came from them
        (``None``: everywhere), so an edited file is never served from its old text."""
        if paths is None:
            self._cached.clear()
            return
        for path, (_, found) in list(self._cached.items()):
            if path in paths or any(s.path in paths for s in found):
                del self._cached[path]

    def status(self) -> dict[str, Any]:
        """Index size, retrieval times and the last request's snippet sources."""
        times = sorted(self.retrieval_ms)
        return {
            "index": self.index.stats() if self.index is not None else None,
            "retrievals": self.retrievals,
            "retrievalMsP95": round(times[int(0.95 * (len(times) - 1))], 2) if times else None,
            "lastPrompt": self.last,
        }
