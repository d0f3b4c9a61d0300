"""Per-document state of the completion service is bounded and dropped when documents close.

The soak (``bench/soak.py``) opens and closes hundreds of documents; this is the cheap check
that nothing the completion service keeps per document (typed-through entries, prefetch blocks,
repository-context snippets, in-flight runs) outlives a ``didClose`` or grows without bound.
"""

from __future__ import annotations

from lsp_server.completion_service import CompletionService
from lsp_server.model_host import ModelHost
from lsp_server.settings import Settings
from lsp_server.typed_through import TypedThroughCache
from lsp_server.worker import ModelWorker

TEXT = "def f(x):\n    return x\n\n\nclass A:\n    pass\n"


def _close(service: CompletionService, uri: str) -> None:
    """What the completion feature does on ``didClose``."""
    service.cancel(uri)
    service.cache.forget(uri)
    service.prefetcher.forget(uri)


def test_closing_documents_drops_their_state() -> None:
    service = CompletionService(ModelHost(ModelWorker()))
    settings = Settings()
    uris = [f"file:///ws/doc{n}.py" for n in range(300)]
    for uri in uris:
        service.prefetcher.document_opened(uri, TEXT, uri, "python", settings)
        service.prefetcher.cursor_moved(uri, TEXT, len(TEXT), uri, "python", settings)
        service.cache.put(uri, TEXT, 10, "completion")
    for uri in uris:
        _close(service, uri)
    assert service.prefetcher._blocks == {}
    assert all(service.cache.find(uri, TEXT, 10) is None for uri in uris)
    assert service._flights == {}


def test_typed_through_cache_is_bounded_in_documents_and_entries() -> None:
    cache = TypedThroughCache(per_document=4, documents=64)
    for n in range(1000):
        cache.put(f"file:///ws/doc{n % 200}.py", TEXT, n % len(TEXT), f"text {n}")
    assert len(cache._entries) == 64
    assert all(len(entries) <= 4 for entries in cache._entries.values())
