"""Fine-tuning from the editor: ``codellama.finetune`` / ``cancelFinetune`` / ``evaluate``.

Training runs in a child process (:class:`training.job.TrainingJob`) so the server keeps
answering completions and survives a trainer crash.  Its JSON progress lines become a
cancellable ``$/progress``; when the run's evaluation gate passes (the new adapter is not worse
than the one served) the adapter is hot-swapped through the model service (the path
``codellama.useAdapter`` takes) and a ``window/showMessage`` reports the before/after metrics.
The dataset service gives both the fine-tune and ``codellama.evaluate`` a current dataset.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from lsp_server.feature import Feature, InvalidParams, command, command_argument

if TYPE_CHECKING:
    from lsp_server.dataset_service import DatasetService
    from lsp_server.model_service import ModelService
    from lsp_server.server import CodeLlamaServer

__all__ = ["FinetuneFeature"]

logger = logging.getLogger(__name__)

TRAIN_SHARE = 80
"""Percent of the ``$/progress`` bar given to training; evaluation fills the rest, so the
percentage keeps rising through both phases (LSP asks for a steadily rising value)."""


CHILD_ENV = {"PYTHONSAFEPATH": "1"}
"""``python -m training.train`` runs with the workspace as its working directory, and Python
would put that directory first on ``sys.path``: a workspace with its own ``training/`` or
``dataset/`` package (common names) would then run instead of ours. Python ≥ 3.11 honours this."""


@dataclasses.dataclass
class _Run:
    run_dir: Path
    job: Any
    state: str = "starting"
    """starting | training | evaluating | swapping | done"""
    started: float = dataclasses.field(default_factory=time.time)
    task: asyncio.Task[Any] | None = None
    eval_progress: tuple[int, int] | None = None
    """``(holes done, holes total)`` while evaluating."""


def _fmt_metrics(metrics: dict[str, Any]) -> str:
    """``EM 12.0 → 20.0, ES 40.1 → 48.3`` from an eval report."""
    base, new = metrics.get("base", {}).get("all"), metrics.get("adapter", {}).get("all")
    if not base or not new:
        return "no evaluation"
    return (
        f"EM {base['exact_match']:.1f} → {new['exact_match']:.1f}, "
        f"ES {base['edit_similarity']:.1f} → {new['edit_similarity']:.1f} "
        f"({metrics.get('holes', 0)} held-out holes)"
    )


class FinetuneFeature(Feature):
    """One fine-tune at a time, in a subprocess; evaluation of adapters."""

    name = "finetune"

    def __init__(
        self, server: CodeLlamaServer, dataset: DatasetService, model: ModelService
    ) -> None:
        super().__init__(server)
        self.dataset = dataset
        self.model = model
        self._run: _Run | None = None
        self._last: dict[str, Any] | None = None

    # -- helpers -------------------------------------------------------------------------------

    def _workspace(self) -> Path:
        root = self.server.workspace_root
        if root is None:
            raise InvalidParams("codellama: open a workspace folder first")
        return Path(root)

    def _base_model(self) -> str:
        model = self.server.settings.model
        if model:
            return str(model)
        info = self.model.host.status()
        return str(info.get("modelId") or info.get("model") or "auto")

    def _served_adapter(self) -> str | None:
        return self.model.served_adapter

    # -- commands ------------------------------------------------------------------------------

    @command("codellama.finetune")
    async def finetune(self, *args: Any) -> dict[str, Any]:
        """Start a fine-tune (``{"maxSteps", "maxMinutes", ...}``; no argument = defaults)."""
        from training.job import JobOptionError, TrainingJob, train_command

        if self._run is not None:
            message = self._busy_message()
            self.server.show(message, types.MessageType.Warning)
            return {"started": False, "error": message}
        options = dict(command_argument(args))
        root = self._workspace()
        run_dir = self.dataset.state_dir(root) / "runs" / time.strftime("ft-%Y%m%d-%H%M%S")
        try:
            cmd = train_command(
                workspace=root,
                dataset=self.dataset.state_dir(root),
                base_model=self._base_model(),
                output=run_dir,
                options=options,
                served_adapter=self._served_adapter(),
            )
        except JobOptionError as exc:
            raise InvalidParams(f"codellama.finetune: {exc}") from exc
        job = TrainingJob(cmd, run_dir, cwd=root, env=CHILD_ENV)
        self._run = _Run(run_dir=run_dir, job=job)
        self._run.task = self.server.spawn(self._train(self._run, root), name="finetune")
        return {"started": True, "run": str(run_dir)}

    @command("codellama.cancelFinetune")
    def cancel_finetune(self, *args: Any) -> dict[str, Any]:
        """Stop the running fine-tune at its next step (a resumable checkpoint is kept)."""
        if self._run is None:
            return {"cancelled": False, "message": "no fine-tune is running"}
        self._run.job.cancel()
        return {"cancelled": True, "run": str(self._run.run_dir)}

    @command("codellama.evaluate")
    async def evaluate(self, *args: Any) -> dict[str, Any]:
        """Base vs served adapter (or ``{"adapter": dir}``) on held-out files, in a subprocess."""
        from training.job import EVAL_OPTIONS, JobOptionError, option_flags, run_json_command

        options = dict(command_argument(args))
        adapter = options.pop("adapter", self._served_adapter())
        try:  # {"maxHoles": 30, "maxMinutes": 5, ...}: checked before any work starts
            flags = option_flags(options, EVAL_OPTIONS)
        except JobOptionError as exc:
            raise InvalidParams(f"codellama.evaluate: {exc}") from exc
        root = self._workspace()
        state = await self.dataset.ensure(root)
        cmd = [sys.executable, "-m", "training.evaluate", "--dataset", str(state)]
        cmd += ["--base-model", self._base_model(), "--json", *flags]
        if adapter and adapter != "none":
            cmd += ["--adapter", str(adapter)]
        progress = await self.server.work_progress("codellama: evaluating").begin("held-out files")
        try:
            report: dict[str, Any] = await asyncio.to_thread(run_json_command, cmd, env=CHILD_ENV)
        except Exception as exc:
            progress.end("failed")
            self.server.show(f"codellama: evaluation failed: {exc}", types.MessageType.Error)
            raise
        summary = _fmt_metrics(report) if adapter else self._base_summary(report)
        progress.end(summary)
        self.server.show(f"codellama: evaluation: {summary}")
        return report

    # -- the run -------------------------------------------------------------------------------

    async def _train(self, run: _Run, root: Path) -> None:
        progress = await self.server.work_progress(
            "codellama: fine-tuning", cancellable=True
        ).begin(f"run {run.run_dir.name}")
        done: dict[str, Any] = {"status": "failed", "error": "did not start"}
        try:
            progress.report("preparing the dataset", 0, 100)
            await self.dataset.ensure(root)

            def on_event(event: dict[str, Any]) -> None:
                self._on_event(run, progress, event)

            run.job.on_event = on_event
            if progress.cancelled.is_set() or run.job.cancel_requested.is_set():
                raise asyncio.CancelledError
            run.job.start()
            run.state = "training"
            waiter = asyncio.ensure_future(asyncio.to_thread(run.job.wait))
            while not waiter.done():
                if progress.cancelled.is_set() and not run.job.cancel_requested.is_set():
                    run.job.cancel()
                await asyncio.sleep(0.2)
            done = waiter.result()
            if done.get("status") == "success" and run.job.cancel_requested.is_set():
                # Cancelled after the trainer's last check: keep the adapter, do not serve it.
                done = {**done, "status": "canceled", "promote": False}
            if done.get("status") == "success" and done.get("promote"):
                run.state = "swapping"
                await self._swap(str(done["adapter"]))
        except asyncio.CancelledError:
            done = {"status": "canceled", "error": "cancelled before training started"}
        except Exception as exc:
            logger.exception("fine-tune failed")
            done = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        finally:
            message = self._final_message(done)
            self._last = {
                **done,
                "run": str(run.run_dir),
                "message": message,
                "finished": time.time(),
            }
            run.state = "done"
            self._run = None
            progress.end(message)
            kind = {
                "success": types.MessageType.Info,
                "canceled": types.MessageType.Warning,
            }.get(str(done.get("status")), types.MessageType.Error)
            self.server.show(f"codellama: {message}", kind)

    def _on_event(self, run: _Run, progress: Any, event: dict[str, Any]) -> None:
        from training.progress import format_eta, percent, step_label

        kind = event.get("event")
        if kind == "step":
            msg = (
                f"{step_label(event)} · loss {event.get('loss', 0):.3f} · "
                f"{event.get('tokens_per_s', 0):.0f} tok/s · eta {format_eta(event.get('eta_s'))}"
            )
            progress.report(msg, percent(event) * TRAIN_SHARE // 100, 100)
        elif kind == "eval":
            run.state = "evaluating"
            done, total = event.get("done"), event.get("total")
            if isinstance(done, int) and isinstance(total, int) and total:
                run.eval_progress = (done, total)
                progress.report(
                    f"evaluating on held-out files: {done}/{total} holes",
                    TRAIN_SHARE * total + (100 - TRAIN_SHARE) * done,
                    100 * total,
                )
            else:
                progress.report("evaluating base vs new adapter on held-out files")
        elif kind == "start":
            progress.report(f"training on {event.get('rows')} packed rows", 0, event.get("total"))

    async def _swap(self, adapter: str) -> None:
        result = await self.model.use_adapter(str(Path(adapter).expanduser().resolve()))
        if not result.get("ok", True):
            raise RuntimeError(f"the adapter could not be loaded: {result}")

    def _final_message(self, done: dict[str, Any]) -> str:
        status = done.get("status")
        metrics = done.get("metrics") or {}
        if status == "success":
            gate = metrics.get("gate") or {}
            if done.get("promote"):
                return f"fine-tune done, now serving {done.get('adapter')}: {_fmt_metrics(metrics)}"
            return (
                f"fine-tune done but not promoted ({gate.get('reason', 'no evaluation')}); "
                f"adapter kept at {done.get('adapter')}"
            )
        if status == "canceled":
            kept = f" (its adapter is kept at {done['adapter']})" if done.get("adapter") else ""
            return (
                f"fine-tune cancelled; still serving {self._served_adapter() or 'the base model'}"
                + kept
            )
        return f"fine-tune failed: {done.get('error') or done.get('message')}"

    def _busy_message(self) -> str:
        run = self._run
        assert run is not None
        step = run.job.last_step or {}
        where = f" (step {step.get('step')}/{step.get('total')})" if step else ""
        return (
            f"codellama: a fine-tune is already running{where}; wait for it or run "
            "codellama.cancelFinetune"
        )

    @staticmethod
    def _base_summary(report: dict[str, Any]) -> str:
        base = report.get("base", {}).get("all", {})
        return f"EM {base.get('exact_match', 0):.1f}, ES {base.get('edit_similarity', 0):.1f}"

    # -- lifecycle -----------------------------------------------------------------------------

    def shutdown(self) -> None:
        if self._run is not None:
            self._run.job.cancel(grace_s=5)

    def status(self) -> dict[str, Any]:
        run = self._run
        training: dict[str, Any] = {"state": "idle"}
        if run is not None:
            step = run.job.last_step or {}
            training = {
                "state": run.state,
                "run": str(run.run_dir),
                "step": step.get("step"),
                "total": step.get("total"),
                "loss": step.get("loss"),
                "etaSeconds": step.get("eta_s"),
                "cancelRequested": run.job.cancel_requested.is_set(),
                "evalHoles": list(run.eval_progress) if run.eval_progress else None,
            }
        last = None
        if self._last is not None:
            last = {
                k: self._last.get(k)
                for k in ("status", "run", "adapter", "promote", "message", "steps", "loss")
            }
        return {"training": training, "servedAdapter": self._served_adapter(), "lastRun": last}
