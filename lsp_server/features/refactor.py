"""Refactor code actions: instant listing, model-written edits on resolve (or via the command).

The work is in :mod:`lsp_server.refactor`; this module is glue: documents, the model worker,
``$/progress``, cancellation (a newer refactor, ``$/cancelRequest`` or the progress' cancel
button) and refusing stale edits.

Only documents the client opened, inside the workspace and at most
:data:`~lsp_server.refactor.access.MAX_REFACTOR_CHARS` long are served (nothing is read from
disk). The listing parses only the statements around the cursor and caches nothing; whole-file
parsing happens on the model worker, for the one refactor that runs.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.uris import to_fs_path

from lsp_server.feature import Feature, command, command_argument, lsp
from lsp_server.refactor.access import size_refusal, workspace_refusal
from lsp_server.refactor.actions import action_by_kind
from lsp_server.refactor.listing import (
    COMMAND,
    KIND,
    disabled_actions,
    list_actions,
    selection_from,
    wants_refactors,
)
from lsp_server.refactor.region import RegionError, Selection, parse_python, select_region
from lsp_server.refactor.service import RefactorOutcome, RefactorRequest, run_refactor
from lsp_server.settings import Settings

if TYPE_CHECKING:
    from lsp_server.model_host import ModelHost
    from lsp_server.server import CodeLlamaServer, Progress

logger = logging.getLogger(__name__)


class _Cancel:
    """Cancelled when either the refactor's own event or the progress' cancel button is set."""

    def __init__(self, *events: threading.Event) -> None:
        self.events = events

    def is_set(self) -> bool:
        return any(event.is_set() for event in self.events)


class Refused(ValueError):
    """The document may not be refactored; the message says why (and never names it)."""

    def __init__(self, reason: str, *, tell_user: bool = False) -> None:
        super().__init__(reason)
        self.tell_user = tell_user
        """True when the listing should show the reason (a too-large document the user has
        open), False when it should stay silent (a URI the user is not editing here)."""


MAX_INSTRUCTION_CHARS = 2_000
"""Longest "Refactor with instruction…" text accepted (it goes into the prompt)."""


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

    def __init__(self, server: CodeLlamaServer, host: ModelHost) -> None:
        super().__init__(server)
        self.host = host
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
        uri = params.text_document.uri
        try:
            selection = selection_from(params.range)
            document = self._document(uri)
        except Refused as why:
            logger.debug("no refactors for %s: %s", uri, why)
            if why.tell_user and self._client_shows_disabled():
                return disabled_actions(str(why))
            return []
        except ValueError as exc:  # an end before the start
            logger.info("code actions for %s ignored: %s", uri, exc)
            return []
        return list_actions(
            uri,
            document.version,
            document.source,
            _language(document.language_id),
            selection,
            resolve_edits=self._client_resolves_edits(),
        )

    @lsp(types.CODE_ACTION_RESOLVE)
    async def resolve(self, action: types.CodeAction) -> types.CodeAction:
        """Run the model for ``action`` and attach the validated edit (or show why not)."""
        data = action.data if isinstance(action.data, dict) else None
        if data is None or "uri" not in data or "kind" not in data:
            return action  # not one of our listings: nothing to resolve
        try:
            job = self._job(data)
        except ValueError as exc:  # closed since the listing, or data we never wrote
            self._no_edit(f"Refactor: {exc}.")
            return action
        edit, _ = await self._refactor(job)
        action.edit = edit
        return action

    @command(COMMAND)
    async def refactor_command(self, *args: Any) -> dict[str, Any]:
        """``codellama.refactor {uri, range, kind, instruction}``: refactor and apply the edit."""

        try:
            job = self._job(command_argument(args))
        except ValueError as exc:
            raise JsonRpcInvalidParams(f"{COMMAND}: {exc}") from exc
        edit, message = await self._refactor(job)
        if edit is None:
            return {"applied": False, "message": message}
        result = await self.server.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label=message)
        )
        return {"applied": bool(result.applied), "message": result.failure_reason or message}

    def settings_changed(self, old: Settings | None, new: Settings) -> None:
        """Free the own refactor model as soon as ``refactorModel`` stops naming it."""
        if self._own_model is not None and self._own_model[0] != new.refactor_model:
            self._release_model()

    def shutdown(self) -> None:
        self._own_model = None

    def status(self) -> dict[str, Any]:
        return {
            "refactorModel": self._own_model[0] if self._own_model else "(completion model)",
            "lastLatencySeconds": self.last_latency_s,
        }

    # -- helpers -----------------------------------------------------------------------------

    def _document(self, uri: str) -> Any:
        """The client's open copy of ``uri`` if refactors may use it, else :class:`Refused`.

        Never reads from disk (``workspace.get_text_document`` would, for an unknown URI).
        """
        document = self.server.workspace.text_documents.get(unquote(uri))
        if document is None:
            raise Refused("the document is not open in the editor")
        reason = workspace_refusal(document.uri, self._workspace_folders())
        if reason is not None:
            raise Refused(reason)
        reason = size_refusal(document.source)
        if reason is not None:
            raise Refused(reason, tell_user=True)
        return document

    def _workspace_folders(self) -> list[str]:
        workspace = self.server.workspace
        uris = [folder.uri for folder in workspace.folders.values()]
        if workspace.root_uri:
            uris.append(workspace.root_uri)
        return [path for uri in uris if (path := to_fs_path(uri))]

    def _client_shows_disabled(self) -> bool:
        caps = self.server.client_capabilities.text_document
        code_action = caps.code_action if caps else None
        return bool(code_action and code_action.disabled_support)

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
        """Validate a code action's ``data`` / the command argument (``ValueError`` says what
        is expected; :class:`Refused` when the document may not be refactored)."""
        uri, kind = data.get("uri"), data.get("kind")
        if not isinstance(uri, str) or not isinstance(kind, str):
            raise ValueError(
                'expected {"uri", "range", "kind"[, "instruction"]} with string uri and kind'
            )
        action_by_kind(kind)  # ValueError listing the valid kinds
        selection = selection_from(data.get("range"))
        instruction = data.get("instruction") or ""
        if not isinstance(instruction, str) or len(instruction) > MAX_INSTRUCTION_CHARS:
            raise ValueError(
                f"instruction must be a string of at most {MAX_INSTRUCTION_CHARS} characters"
            )
        document = self._document(uri)
        version = data.get("version", document.version)
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise ValueError("version must be an integer or null")
        return _Job(
            uri,
            version,
            document.source,
            _language(document.language_id),
            selection,
            kind,
            instruction,
        )

    async def _refactor(self, job: _Job) -> tuple[types.WorkspaceEdit | None, str]:
        """Generate, validate and build the edit; shows the message when there is no edit."""
        try:
            document = self._document(job.uri)
        except Refused as exc:
            return self._no_edit(f"Refactor: {exc}.")
        if job.version is not None and document.version != job.version:
            return self._no_edit("The document changed since the actions were listed; try again.")
        if self._current is not None:
            self._current.set()  # a newer refactor supersedes the running one
        cancel = self._current = threading.Event()
        action = action_by_kind(job.kind)
        progress = await self.server.work_progress(
            f"CodeLlama: {action.title.rstrip('…')}", cancellable=True
        ).begin()
        future = self.host.run(
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
        current = self.server.workspace.text_documents.get(unquote(job.uri))
        if current is None:
            return self._no_edit("The document was closed while the refactor ran.")
        if current.source != job.source:
            return self._no_edit("The document changed while the refactor ran; try again.")
        edit = workspace_edit(
            job.uri,
            current.version,
            job.source,
            outcome.new_source,
            document_changes=self._client_versioned_edits(),
            encoding=_encoding(self.server.workspace.position_encoding),
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
            self._free_model()
            return engine.loaded
        if self._own_model is None or self._own_model[0] != spec:
            from model_runtime.loader import load_model

            self._free_model()  # never hold two refactor models
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

    def _release_model(self) -> None:
        """Free the own refactor model on the model worker (the only thread that uses it)."""
        self.host.worker.submit(self._free_model, name="free refactor model")

    def _free_model(self) -> None:
        if self._own_model is None:
            return
        logger.info("freeing refactor model %s", self._own_model[0])
        self._own_model = None
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def _language(language_id: Any) -> str:
    """The document's language id, "" when the client sent none or a non-string."""
    return language_id if isinstance(language_id, str) else ""


def _encoding(kind: Any) -> str:
    """``utf-8`` / ``utf-16`` / ``utf-32`` from the negotiated ``PositionEncodingKind``."""
    return str(getattr(kind, "value", kind) or "utf-16")
