"""The server's services, created in one place and handed to the features that need them.

Features do not find each other: a feature names the services it needs as constructor
parameters (``def __init__(self, server, model: ModelService, dataset: DatasetService)``) and
:func:`lsp_server.setup.create_server` passes them by those names (:meth:`Services.for_feature`),
the way esbonio injects its managers. What each service owns:

- ``worker`` (:class:`~lsp_server.worker.ModelWorker`): the one thread that touches the model;
- ``host`` (:class:`~lsp_server.model_host.ModelHost`): the engine, its load state, ``run(fn)``;
- ``completions`` (:class:`~lsp_server.completion_service.CompletionService`): requests,
  debounce, the typed-through cache, prefetch, repository context;
- ``model`` (:class:`~lsp_server.model_service.ModelService`): settings → loads, adapter swaps
  and overrides, what is really served;
- ``dataset`` (:class:`~lsp_server.dataset_service.DatasetService`): the workspace watcher, the
  state dir, ``ensure()`` for a current dataset, the repository-context index.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import TYPE_CHECKING, Any

from lsp_server.completion_service import CompletionService
from lsp_server.dataset_service import DatasetService
from lsp_server.model_host import ModelHost
from lsp_server.model_service import ModelService
from lsp_server.worker import ModelWorker

if TYPE_CHECKING:
    from lsp_server.server import CodeLlamaServer

__all__ = ["Services"]


@dataclasses.dataclass(frozen=True)
class Services:
    """Every shared service of one server (see the module docstring)."""

    worker: ModelWorker
    host: ModelHost
    completions: CompletionService
    model: ModelService
    dataset: DatasetService

    @classmethod
    def create(cls, server: CodeLlamaServer) -> Services:
        """The services of ``server``, wired to each other."""
        worker = ModelWorker()
        host = ModelHost(worker)
        completions = CompletionService(host)
        return cls(
            worker=worker,
            host=host,
            completions=completions,
            model=ModelService(server, host, completions),
            dataset=DatasetService(server, completions),
        )

    def for_feature(self, feature_cls: type) -> dict[str, Any]:
        """Keyword arguments for ``feature_cls(server, **kwargs)``: each constructor parameter
        (after ``server``) named like a service gets it; an unknown required one is an error."""
        names = {f.name for f in dataclasses.fields(self)}
        kwargs: dict[str, Any] = {}
        params = list(inspect.signature(feature_cls).parameters.values())[1:]
        for param in params:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if param.name in names:
                kwargs[param.name] = getattr(self, param.name)
            elif param.default is param.empty:
                raise TypeError(
                    f"{feature_cls.__name__} asks for {param.name!r}, which is not a service "
                    f"(services: {', '.join(sorted(names))})"
                )
        return kwargs
