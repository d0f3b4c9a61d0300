"""Refactor code actions: instant listing, model-written edits on resolve (or via the command).

The work is in :mod:`lsp_server.refactor`; this module is glue: documents, the model worker,
``$/progress``, cancellation (a newer refactor, ``$/cancelRequest`` or the progress' cancel
button) and refusing stale edits.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from lsp_server.feature import Feature, command, lsp
from lsp_server.refactor.actions import action_by_kind
from lsp_server.refactor.listing import (
    COMMAND,
    KIND,
    list_actions,
    selection_from,
    wants_refactors,
)
from lsp_server.refactor.region import RegionError, Selection, parse_python, select_region
from lsp_server.refactor.service import RefactorOutcome, RefactorRequest, run_refactor

if TYPE_CHECKING:
    from lsp_server.server import CodeLlamaServer, Progress

logger = logging.getLogger(__name__)


class _Cancel:
    """Cancelled when either the refactor's own event or the progress' cancel button is set."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(event.is_set() for event in self.events)


@dataclass(frozen=True)
class _Job:
    uri: str
    version: int | None
    source: str
    language: str
    selection: Selection
    kind: str
    instruction: str


class RefactorFeature(Feature):
    """``refactor.rewrite`` code actions validated before they are offered."""

    name = "refactor"

    def __init__(self, server: CodeLlamaServer) -> None:
        super().__init__(server)
        self._trees: dict[str, tuple[int | None, ast.Module | None]] = {}
        self._current: threading.Event | None = None
        self._own_model: tuple[str, Any] | None = None
        self.last_latency_s: float | None = None

    @lsp(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[KIND], resolve_provider=True),
    )
    def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        """List the actions (never runs the model)."""
        automatic = params.context.trigger_kind == types.CodeActionTriggerKind.Automatic
        if not wants_refactors(params.context.only) or (
            automatic and params.range.start == params.range.end
        ):
            return []  # no light bulb on every cursor move: Ctrl+. / the Refactor menu list them
        document = self.server.workspace.get_text_document(params.text_document.uri)
        tree = self._tree(document.uri, document.version, document.source, document.language_id)
        return list_actions(
            document.uri,
            document.version,
            document.source,
            document.language_id or "",
            selection_from(params.range),
            tree=tree,
            resolve_edits=self._client_resolves_edits(),
        )

    @lsp(types.CODE_ACTION_RESOLVE)
    async def resolve(self, action: types.CodeAction) -> types.CodeAction:
        """Run the model for ``action`` and attach the validated edit (or show why not)."""
        data = action.data if isinstance(action.data, dict) else None
        if data is None or "uri" not in data or "kind" not in data:
            return action  # not one of our listings: nothing to resolve
        job = self._job(data)
        edit, _ = await self._refactor(job)
        action.edit = edit
        return action

    @command(COMMAND)
    async def refactor_command(self, *args: Any) -> dict[str, Any]:
        """``codellama.refactor {uri, range, kind, instruction}``: refactor and apply the edit."""
        from lsp_server.setup import command_argument

        job = self._job(command_argument(args))
        edit, message = await self._refactor(job)
        if edit is None:
            return {"applied": False, "message": message}
        result = await self.server.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label=message)
        )
        return {"applied": bool(result.applied), "message": result.failure_reason or message}

    def document_closed(self, params: types.DidCloseTextDocumentParams) -> None:
        self._trees.pop(params.text_document.uri, None)

    def status(self) -> dict[str, Any]:
        return {
            "refactorModel": self._own_model[0] if self._own_model else "(completion model)",
            "lastLatencySeconds": self.last_latency_s,
        }

    # -- helpers -----------------------------------------------------------------------------

    def _tree(self, uri: str, version: int | None, source: str, language: str | None) -> Any:
        """Parsed Python for ``uri`` at ``version`` (cached: listings come on every cursor move)."""
        if language != "python":
            return None
        cached = self._trees.get(uri)
        if cached is None or cached[0] != version or version is None:
            cached = (version, parse_python(source))
            self._trees[uri] = cached
        return cached[1]

    def _client_resolves_edits(self) -> bool:
        caps = self.server.client_capabilities.text_document
        code_action = caps.code_action if caps else None
        support = code_action.resolve_support if code_action else None
        return bool(support and "edit" in support.properties)

    def _client_versioned_edits(self) -> bool:
        workspace = self.server.client_capabilities.workspace
        edit = workspace.workspace_edit if workspace else None
        return bool(edit and edit.document_changes)

    def _job(self, data: dict[str, Any]) -> _Job:
        """Validate a code action's ``data`` / the command argument (errors name the field)."""
        uri, kind = data.get("uri"), data.get("kind")
        if not isinstance(uri, str) or not isinstance(kind, str):
            raise ValueError('codellama.refactor needs {"uri", "range", "kind"[, "instruction"]}')
        action_by_kind(kind)  # ValueError listing the valid kinds
        document = self.server.workspace.get_text_document(uri)
        version = data.get("version", document.version)
        return _Job(
            uri,
            version,
            document.source,
            document.language_id or "",
            selection_from(data.get("range")),
            kind,
            str(data.get("instruction") or ""),
        )

    async def _refactor(self, job: _Job) -> tuple[types.WorkspaceEdit | None, str]:
        """Generate, validate and build the edit; shows the message when there is no edit."""
        document = self.server.workspace.get_text_document(job.uri)
        if job.version is not None and document.version != job.version:
            return self._no_edit("The document changed since the actions were listed; try again.")
        if self._current is not None:
            self._current.set()  # a newer refactor supersedes the running one
        cancel = self._current = threading.Event()
        action = action_by_kind(job.kind)
        progress = await self.server.work_progress(
            f"CodeLlama: {action.title.rstrip('…')}", cancellable=True
        ).begin()
        future = self.server.host.run(
            lambda engine: self._run(engine, job, _Cancel(cancel, progress.cancelled), progress),
            cancel=cancel,
            name=f"refactor {job.kind}",
        )
        try:
            outcome = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            cancel.set()
            progress.end("cancelled")
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # $/cancelRequest: pygls answers RequestCancelled
            return None, "Refactor cancelled."  # superseded before it started
        except Exception as exc:
            cancelled = cancel.is_set() or progress.cancelled.is_set()
            progress.end("cancelled" if cancelled else "failed")
            if cancelled:
                return None, "Refactor cancelled."
            if isinstance(exc, RegionError):
                return self._no_edit(f"Refactor: {exc}.")
            logger.warning("refactor failed: %s", exc, exc_info=not isinstance(exc, ValueError))
            return self._no_edit(f"No valid edit: {exc}")
        finally:
            if self._current is cancel:
                self._current = None
        progress.end(outcome.message)
        return self._edit(job, outcome)

    def _edit(self, job: _Job, outcome: RefactorOutcome) -> tuple[types.WorkspaceEdit | None, str]:
        from lsp_server.refactor.edits import workspace_edit

        self.last_latency_s = round(outcome.latency_s, 3)
        if outcome.new_source is None:
            return self._no_edit(outcome.message)
        current = self.server.workspace.get_text_document(job.uri)
        if current.source != job.source:
            return self._no_edit("The document changed while the refactor ran; try again.")
        edit = workspace_edit(
            job.uri,
            current.version,
            job.source,
            outcome.new_source,
            document_changes=self._client_versioned_edits(),
        )
        return edit, outcome.message

    def _no_edit(self, message: str) -> tuple[None, str]:
        self.server.show(message, types.MessageType.Warning)
        return None, message

    def _run(self, engine: Any, job: _Job, cancel: _Cancel, progress: Progress) -> RefactorOutcome:
        """On the model worker: pick the model, then plan → generate → validate."""
        from lsp_server.refactor.generate import generate_answer

        loaded = self._model(engine, progress)
        tree = parse_python(job.source) if job.language == "python" else None
        region = select_region(job.source, job.selection, job.language, tree)
        request = RefactorRequest(
            job.source, job.language, region, action_by_kind(job.kind), job.instruction
        )

        def generate(prompt: Any) -> Any:
            return generate_answer(loaded.model, loaded.tokenizer, prompt, cancel=cancel)

        # GenerationCancelled propagates: _refactor reports it as "cancelled", not as a failure.
        return run_refactor(
            request, generate, progress=lambda m, pct: progress.report(m, pct, 100), tree=tree
        )

    def _model(self, engine: Any, progress: Progress) -> Any:
        """The ``refactorModel`` when set (loaded once, on this worker), else the served model."""
        spec = self.server.settings.refactor_model
        if not spec or spec == self.server.settings.model:
            self._own_model = None
            return engine.loaded
        if self._own_model is None or self._own_model[0] != spec:
            from training.runtime.loader import load_model

            progress.report(f"loading refactor model {spec}")
            settings = self.server.settings
            try:
                loaded = load_model(spec, device=settings.device, dtype=settings.dtype)
            except Exception as exc:
                raise ValueError(
                    f"could not load refactorModel '{spec}' ({exc}); fix the setting or clear it "
                    "to use the completion model"
                ) from exc
            self._own_model = (spec, loaded)
        return self._own_model[1]
