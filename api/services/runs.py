"""Runs: materialisations of a project's graph through Dagster's run queue. The rules a run must
pass before it starts (documents, data-rights confirmation, an approved base model, a dataset for
a training run, the plan's run and step quotas) live here; each refusal is audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from api import schemas, views
from api.errors import AppError, BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from api.security import Principal
from api.services import run_progress
from api.services.base import TenantService, get_project
from api.services.plans import Quotas
from api.services.projects import settings_error
from api.services.run_form import PreflightEstimate, estimate_preflight, model_config_json
from assets.failures import StageFailure, failure_data
from assets.project import RUN_ID_TAG
from assets.training.config import validate_hyperparameters
from resources import request_context
from resources.database import Database
from resources.model_registry import ModelNotApproved, check_approved
from resources.object_store import ObjectStore
from resources.orchestrator import (
    PIPELINE_JOB,
    TRAINING_JOB,
    DagsterOrchestrator,
    OrchestratorError,
)
from resources.project_settings import InvalidSetting, ProjectSettings
from resources.repository import TenantScope, partition_key
from resources.run_states import ACTIVE, TERMINAL, follow, move
from resources.settings import get_settings
from resources.tables import Project, Run, RunEvent, Tenant

KINDS = {"pipeline": PIPELINE_JOB, "training": TRAINING_JOB}
TENANT_TAG = "privatune/tenant"


def run_config(data: schemas.RunCreate) -> dict:
    """The Dagster run config a request asks for, or BadRequest naming the field to fix."""
    if data.kind not in KINDS:
        raise BadRequest(
            f"kind must be one of {', '.join(KINDS)}, not {data.kind!r}", code="invalid_run_config"
        )
    ops: dict = {}
    adapter = dict(data.hyperparameters or {})
    if data.train_steps is not None:
        if not 1 <= data.train_steps <= 100_000:
            raise BadRequest("train_steps must be between 1 and 100000", code="invalid_run_config")
        adapter["max_steps"] = data.train_steps
    if data.base_model is not None:
        adapter["base_model"] = data.base_model
    try:
        validate_hyperparameters(adapter)
    except ValueError as exc:
        raise BadRequest(f"invalid hyperparameters: {exc}", code="invalid_run_config") from exc
    if adapter:
        ops["adapter"] = {"config": adapter}
    if data.eval_max_questions is not None:
        if data.kind == "training":
            raise BadRequest(
                "eval_max_questions applies to pipeline runs; a training run does not evaluate",
                code="invalid_run_config",
            )
        if not 0 <= data.eval_max_questions <= 10_000:
            raise BadRequest(
                "eval_max_questions must be between 0 and 10000", code="invalid_run_config"
            )
        ops["eval_report"] = {"config": {"max_questions": data.eval_max_questions}}
    return {"ops": ops} if ops else {}


def _adapter_config(config: dict) -> dict[str, Any]:
    return config.get("ops", {}).get("adapter", {}).get("config", {})


def project_settings(project: Project) -> ProjectSettings:
    try:
        return ProjectSettings.load(project.settings)
    except InvalidSetting as exc:
        raise settings_error(exc) from exc


def train_steps(project: Project, config: dict) -> int | None:
    """The steps the run will train for (None when epochs decide it)."""
    adapter = _adapter_config(config)
    if adapter.get("epochs"):
        return None
    return int(adapter.get("max_steps") or project_settings(project).effective_train_steps())


def refresh(scope: TenantScope, run: Run, orchestrator: DagsterOrchestrator) -> None:
    """Bring our row's status up to date with Dagster's (while the run is not finished). A
    failed run's `error` is the explanation its timeline holds (`views.failure_event`: what
    failed, naming the document / example / setting, and what to do); when the timeline holds
    none (a step crashed before its stage began) a `run_failed` event names the failed steps
    and where Dagster keeps their log."""
    if run.status in TERMINAL or not run.dagster_run_id:
        return
    try:
        info = orchestrator.run(run.dagster_run_id)
    except OrchestratorError:
        return  # keep the last known status; the caller can ask again
    if (
        follow(
            run,
            info.status,
            scope,
            f"Dagster run is {info.dagster_status}",
            dagster_status=info.dagster_status,
        )
        and info.status == "failed"
    ):
        failed = [s["stepKey"] for s in info.steps if s["status"] == "FAILURE"]
        events = list(scope.run_events(run.id))
        explained = views.failure_event(events)
        if explained is not None:
            others = [s for s in failed if s != explained.stage]
            run.error = explained.message + (
                f" (also failed: {', '.join(others)}; see Dagster run {info.dagster_run_id})"
                if others
                else ""
            )
            return
        failure = _unexplained(scope, run, info.dagster_run_id, failed, events)
        scope.add_run_event(
            run.id,
            "run_failed",
            str(failure),
            stage=failed[0] if failed else None,
            data=failure_data(failure),
        )
        run.error = str(failure)


def _unexplained(
    scope: TenantScope, run: Run, dagster_run_id: str, failed: list[str], events: list
) -> StageFailure:
    """Dagster failed the run and no stage said why: name the steps and where the log is."""
    project = scope.session.get(Project, run.project_id)
    slug = project.slug if project is not None else "{project}"
    attempt = views.current_attempt(events)
    finished = [
        s for s in failed if any(e.kind == "stage_finished" and e.stage == s for e in attempt)
    ]
    errors = [e.message for e in attempt if e.kind == "error" and e.message]
    steps = ", ".join(failed) or "no step (the run itself)"
    if finished:
        cause = (
            f"Dagster failed step(s) {steps} after {', '.join(finished)} finished its work: most "
            "likely a blocking asset check on it did not pass (or storing its output failed)"
        )
    else:
        cause = (
            f"Dagster reports step(s) {steps} failed before privatune could record why (the "
            "step crashed or was stopped before its stage began: a resource, the IO manager or "
            "the run's worker process)"
        )
    if errors:
        cause += f"; the last error recorded: {errors[-1]}"
    return StageFailure(
        ", ".join(failed) or "the run",
        cause,
        f"open Dagster run {dagster_run_id} in the Dagster UI: the step's log and asset checks "
        f"say what went wrong. Then retry the run (POST /v1/projects/{slug}/runs/{run.id}/"
        f"retry); if it fails again, report run {run.id} (Dagster run {dagster_run_id})",
        code="step_failed",
        details={"failed_steps": failed, "dagster_run_id": dagster_run_id},
    )


@dataclass(frozen=True)
class RunFormDefaults:
    """What applies to a run when the form leaves a field blank."""

    base_model: str | None  # the project's choice (None: the registry's default)
    train_steps: int
    checkpoint_every: int


@dataclass(frozen=True)
class RunListRow:
    run: schemas.Run
    tone: str
    seconds: float


@dataclass(frozen=True)
class RunPage:
    """Everything the run page shows, read from the database (the status refreshed from
    Dagster first): the progress, the loss curve, stages, checkpoints and events."""

    run: schemas.Run  # without its events (`timeline` has them); `failure` set when failed
    tone: str
    terminal: bool
    seconds: float
    progress: run_progress.Progress
    points: list[dict[str, Any]]
    timeline: run_progress.Timeline
    last_event_id: int


@dataclass(frozen=True)
class RunUpdate:
    """What changed since event `after`: for the run page's live stream."""

    status: str
    tone: str
    terminal: bool
    progress: run_progress.Progress | None  # None: nothing new to show
    points: list[dict[str, Any]]
    timeline_changed: bool
    last_event_id: int


def _total_steps(project: Project, run: Run) -> int | None:
    try:
        return train_steps(project, run.config or {})
    except AppError:  # unreadable settings: the step events still say it
        return None


class RunService(TenantService):
    def __init__(
        self,
        db: Database,
        principal: Principal,
        orchestrator: DagsterOrchestrator,
        store: ObjectStore | None = None,
    ) -> None:
        super().__init__(db, principal)
        self.orchestrator = orchestrator
        self.store = store  # where object-store base models keep their config.json

    def _run(self, scope: TenantScope, project: str, run_id: str) -> Run:
        row = get_project(scope, project)
        run = scope.run(run_id)
        if run is None or run.project_id != row.id:
            raise NotFound(f"run {run_id} not found in project {project}", code="run_not_found")
        return run

    def create(self, project: str, request: schemas.RunCreate) -> schemas.Run:
        config = run_config(request)
        with self.scope() as scope:
            row = get_project(scope, project)
            self._check_may_run(scope, row, request.kind, config)
            run = scope.add_run(row.id, request.kind, config)
            run_id, project_slug = run.id, row.slug
            scope.add_run_event(run.id, "status", f"{request.kind} run created")
            scope.audit(
                self.actor,
                "run.created",
                run.id,
                {"project": project_slug, "kind": request.kind, "config": config},
            )
        return self._launch(project_slug, run_id, request.kind, config)

    def retry(self, project: str, run_id: str) -> schemas.Run:
        with self.scope() as scope:
            run = self._run(scope, project, run_id)
            refresh(scope, run, self.orchestrator)
            if run.status not in ("failed", "cancelled"):
                raise Conflict(
                    f"run {run_id} is {run.status}: only failed or cancelled runs can be retried",
                    code="run_not_retryable",
                )
            row = get_project(scope, project)
            self._check_may_run(scope, row, run.kind, run.config or {}, retry_of=run.id)
            move(run, "queued", scope, "retry requested")
            run.error = None
            kind, config, project_slug = run.kind, dict(run.config or {}), row.slug
            scope.audit(self.actor, "run.retried", run.id, {"project": project_slug})
        return self._launch(project_slug, run_id, kind, config)

    def list(self, project: str) -> list[schemas.Run]:
        with self.scope() as scope:
            runs = list(scope.runs(get_project(scope, project).id))
            failed = [r.id for r in runs if r.status == "failed"]
            context: dict[str, list[RunEvent]] = {}
            if failed:  # what explains each failed run, in one query
                for event in scope.session.scalars(
                    select(RunEvent)
                    .where(
                        RunEvent.tenant_id == self.tenant_id,
                        RunEvent.run_id.in_(failed),
                        RunEvent.kind.in_(views.FAILURE_CONTEXT_KINDS),
                    )
                    .order_by(RunEvent.at, RunEvent.id)
                ):
                    context.setdefault(event.run_id, []).append(event)
            return [views.run(r, failure_events=context.get(r.id, [])) for r in runs]

    def get(self, project: str, run_id: str) -> schemas.Run:
        with self.scope() as scope:
            run = self._run(scope, project, run_id)
            refresh(scope, run, self.orchestrator)
            return views.run(run, list(scope.run_events(run.id)))

    def cancel(self, project: str, run_id: str) -> schemas.Run:
        with self.scope() as scope:
            run = self._run(scope, project, run_id)
            if run.status in TERMINAL:
                raise Conflict(f"run {run_id} already {run.status}", code="run_finished")
            if run.dagster_run_id:
                try:
                    self.orchestrator.terminate(run.dagster_run_id)
                except OrchestratorError as exc:
                    raise ServiceUnavailable(str(exc), code="orchestrator_unavailable") from exc
            move(
                run,
                "cancelling" if run.dagster_run_id else "cancelled",
                scope,
                "cancellation requested",
            )
            scope.audit(self.actor, "run.cancelled", run.id)
            return views.run(run, list(scope.run_events(run.id)))

    def _check_may_run(
        self,
        scope: TenantScope,
        project: Project,
        kind: str,
        config: dict,
        retry_of: str | None = None,
    ) -> None:
        """The rights checks every run that trains must pass, then the plan's quotas; a refusal
        is audited (and recorded even though the request fails)."""

        def refuse(error: Exception) -> None:
            scope.audit(
                self.actor,
                "run.refused",
                project.slug,
                {
                    "reason": getattr(error, "message", str(error)),
                    "code": getattr(error, "code", ""),
                },
            )
            scope.session.commit()
            raise error

        if not scope.documents(project.id):
            refuse(
                Conflict("the project has no documents yet: upload some first", code="no_documents")
            )
        if project.rights_confirmed_at is None:
            refuse(
                Forbidden(
                    f"nobody has confirmed that {self.tenant_slug} holds the rights to train on "
                    f"the documents of project {project.slug}: PUT /v1/projects/{project.slug}/"
                    "data-rights with confirmed_by first",
                    code="data_rights_not_confirmed",
                )
            )
        model_id = _adapter_config(config).get("base_model") or project_settings(project).base_model
        tenant = scope.session.get(Tenant, self.tenant_id)
        assert tenant is not None
        try:
            check_approved(scope.session, tenant, model_id)
        except ModelNotApproved as exc:
            refuse(Forbidden(str(exc), code="model_not_approved"))
        if kind == "training" and not scope.dataset_versions(project.id):
            refuse(
                Conflict(
                    "the project has no dataset version yet: run the pipeline (kind pipeline) "
                    "once so the documents become a dataset, then train",
                    code="no_dataset",
                )
            )
        # Runs whose Dagster run ended unobserved must not count as running.
        for active in scope.session.scalars(
            select(Run).where(Run.tenant_id == self.tenant_id, Run.status.in_(ACTIVE))
        ):
            if active.id != retry_of:
                refresh(scope, active, self.orchestrator)
        scope.session.flush()
        try:
            Quotas(scope).check_run(train_steps(project, config), new_run=retry_of is None)
        except Exception as exc:
            refuse(exc)

    def _launch(self, project_slug: str, run_id: str, kind: str, config: dict) -> schemas.Run:
        key = partition_key(self.tenant_slug, project_slug)
        tags = {RUN_ID_TAG: run_id, TENANT_TAG: self.tenant_slug}
        request_id = request_context.current().request_id
        if request_id:
            tags[request_context.REQUEST_ID_TAG] = request_id
        try:
            dagster_id = self.orchestrator.launch(key, config, tags, job=KINDS[kind])
        except OrchestratorError as exc:
            with self.scope() as scope:
                failed = scope.run(run_id)
                assert failed is not None
                move(failed, "failed", scope, f"could not start: {exc}")
                failed.error = str(exc)
                scope.add_run_event(run_id, "error", str(exc))
            raise ServiceUnavailable(
                f"the run could not be started: {exc}", code="orchestrator_unavailable"
            ) from exc
        with self.scope() as scope:
            submitted = scope.run(run_id)
            assert submitted is not None
            submitted.dagster_run_id = dagster_id
            scope.add_run_event(
                run_id, "status", "submitted to Dagster", data={"dagster_run_id": dagster_id}
            )
            return views.run(submitted, list(scope.run_events(run_id)))

    # --- for the portal's pages ---------------------------------------------------------------

    def form_defaults(self, project: str) -> RunFormDefaults:
        with self.scope() as scope:
            settings = project_settings(get_project(scope, project))
            return RunFormDefaults(
                settings.base_model,
                settings.effective_train_steps(),
                get_settings().checkpoint_every,
            )

    def estimate(
        self, project: str, base_model: str | None, hyperparameters: dict[str, Any]
    ) -> PreflightEstimate:
        """The memory preflight a run with these (validated) hyperparameters would meet, for
        the base model asked for (or the project's): Forbidden when it is not approved."""
        with self.scope() as scope:
            row = get_project(scope, project)
            settings = project_settings(row)
            tenant = scope.session.get(Tenant, self.tenant_id)
            assert tenant is not None
            try:
                model = check_approved(scope.session, tenant, base_model or settings.base_model)
            except ModelNotApproved as exc:
                raise Forbidden(str(exc), code="model_not_approved") from exc
            model_id, kind, source = model.id, model.source_kind, model.source
            steps = settings.effective_train_steps()
        config_json = model_config_json(kind, source, model_id, self.store, get_settings())
        return estimate_preflight(model_id, config_json, hyperparameters, steps)

    def listing(self, project: str) -> Sequence[RunListRow]:
        """The project's runs, newest first, with their durations; active runs' statuses are
        refreshed from Dagster first (a finished run is not shown as running)."""
        with self.scope() as scope:
            row = get_project(scope, project)
            for active in scope.session.scalars(
                select(Run).where(
                    Run.tenant_id == self.tenant_id,
                    Run.project_id == row.id,
                    Run.status.in_(ACTIVE),
                )
            ):
                refresh(scope, active, self.orchestrator)
        return [
            RunListRow(
                r,
                run_progress.tone(r.status),
                run_progress.run_seconds(r.created_at, r.updated_at, r.status),
            )
            for r in self.list(project)
        ]

    def page(self, project: str, run_id: str) -> RunPage:
        with self.scope() as scope:
            row = get_project(scope, project)
            run = self._run(scope, project, run_id)
            refresh(scope, run, self.orchestrator)
            events = list(scope.run_events(run.id))
            total = _total_steps(row, run)
            return RunPage(
                views.run(run, failure_events=events),
                run_progress.tone(run.status),
                run_progress.is_terminal(run.status),
                run_progress.run_seconds(run.created_at, run.updated_at, run.status),
                run_progress.progress(run.status, events, total),
                run_progress.loss_points(events),
                run_progress.timeline(events, run.status),
                max((e.id for e in events), default=0),
            )

    def updates(self, project: str, run_id: str, after: int, refresh_status: bool) -> RunUpdate:
        """The run's status (refreshed from Dagster when `refresh_status`) and what its
        timeline gained after event id `after`: new loss points, the progress, whether the
        listed events changed."""
        with self.scope() as scope:
            row = get_project(scope, project)
            run = self._run(scope, project, run_id)
            if refresh_status:
                refresh(scope, run, self.orchestrator)
                scope.session.flush()
            new = list(
                scope.session.scalars(
                    select(RunEvent)
                    .where(
                        RunEvent.tenant_id == self.tenant_id,
                        RunEvent.run_id == run.id,
                        RunEvent.id > after,
                    )
                    .order_by(RunEvent.id)
                )
            )
            progress = None
            if new:
                context = new
                if not any(e.kind == run_progress.STEP_KIND for e in new):
                    # the waiting text names the running stage: the earlier events say which
                    context = [e for e in scope.run_events(run.id) if e.id <= new[-1].id]
                progress = run_progress.progress(run.status, context, _total_steps(row, run))
            return RunUpdate(
                run.status,
                run_progress.tone(run.status),
                run_progress.is_terminal(run.status),
                progress,
                run_progress.chart_points(run_progress.loss_points(new)),
                run_progress.has_listed_events(new),
                new[-1].id if new else after,
            )
