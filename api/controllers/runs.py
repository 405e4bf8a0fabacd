"""Runs: materialisations of the project's graph through Dagster's run queue."""

from __future__ import annotations

from litestar import Controller, get, post
from sqlalchemy import select

from api import schemas, views
from api.auth import Principal
from api.controllers.projects import get_project
from api.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from assets.failures import StageFailure, failure_data
from assets.project import RUN_ID_TAG
from assets.training.config import validate_hyperparameters
from resources.database import Database
from resources.model_registry import ModelNotApproved, check_approved
from resources.orchestrator import (
    PIPELINE_JOB,
    TRAINING_JOB,
    DagsterOrchestrator,
    OrchestratorError,
)
from resources.repository import TenantScope, partition_key
from resources.run_states import TERMINAL, follow, move
from resources.tables import Project, Run, RunEvent, Tenant

KINDS = {"pipeline": PIPELINE_JOB, "training": TRAINING_JOB}


def _run_config(data: schemas.RunCreate) -> dict:
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


def _run(scope: TenantScope, project: str, run_id: str) -> Run:
    row = get_project(scope, project)
    run = scope.run(run_id)
    if run is None or run.project_id != row.id:
        raise NotFound(f"run {run_id} not found in project {project}", code="run_not_found")
    return run


class RunController(Controller):
    path = "/v1/projects/{project:str}/runs"
    tags = ["runs"]

    @post("/", operation_id="createRun", sync_to_thread=True, status_code=202)
    def create(
        self,
        project: str,
        principal: Principal,
        db: Database,
        orchestrator: DagsterOrchestrator,
        data: schemas.RunCreate | None = None,
    ) -> schemas.Run:
        """Start a run through Dagster: `pipeline` materialises the whole graph (documents to
        deployment), `training` the adapter alone on the latest dataset version, with
        `hyperparameters` and an approved `base_model`. Both need the project's data-rights
        confirmation and a base model approved for the tenant."""
        request = data or schemas.RunCreate()
        run_config = _run_config(request)
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            _check_may_train(scope, principal, row, request.kind, run_config)
            run = scope.add_run(row.id, request.kind, run_config)
            run_id, project_slug = run.id, row.slug
            scope.add_run_event(run.id, "status", f"{request.kind} run created")
            scope.audit(
                principal.actor,
                "run.created",
                run.id,
                {"project": project_slug, "kind": request.kind, "config": run_config},
            )
        return _launch(db, orchestrator, principal, project_slug, run_id, request.kind, run_config)

    @post("/{run_id:str}/retry", operation_id="retryRun", sync_to_thread=True, status_code=202)
    def retry(
        self,
        project: str,
        run_id: str,
        principal: Principal,
        db: Database,
        orchestrator: DagsterOrchestrator,
    ) -> schemas.Run:
        """Run a failed or cancelled run again with the same configuration; a training run
        resumes from its latest checkpoint."""
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            run = _run(scope, project, run_id)
            refresh(scope, run, orchestrator)
            if run.status not in ("failed", "cancelled"):
                raise Conflict(
                    f"run {run_id} is {run.status}: only failed or cancelled runs can be retried",
                    code="run_not_retryable",
                )
            row = get_project(scope, project)
            _check_may_train(scope, principal, row, run.kind, run.config or {})
            move(run, "queued", scope, "retry requested")
            run.error = None
            kind, config, project_slug = run.kind, dict(run.config or {}), row.slug
            scope.audit(principal.actor, "run.retried", run.id, {"project": project_slug})
        return _launch(db, orchestrator, principal, project_slug, run_id, kind, config)

    @get("/", operation_id="listRuns", sync_to_thread=True)
    def list(self, project: str, principal: Principal, db: Database) -> list[schemas.Run]:
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            runs = list(scope.runs(get_project(scope, project).id))
            failed = [r.id for r in runs if r.status == "failed"]
            context: dict[str, list[RunEvent]] = {}
            if failed:  # what explains each failed run, in one query
                for event in scope.session.scalars(
                    select(RunEvent)
                    .where(
                        RunEvent.tenant_id == principal.tenant_id,
                        RunEvent.run_id.in_(failed),
                        RunEvent.kind.in_(views.FAILURE_CONTEXT_KINDS),
                    )
                    .order_by(RunEvent.at, RunEvent.id)
                ):
                    context.setdefault(event.run_id, []).append(event)
            return [views.run(r, failure_events=context.get(r.id, [])) for r in runs]

    @get("/{run_id:str}", operation_id="getRun", sync_to_thread=True)
    def get(
        self,
        project: str,
        run_id: str,
        principal: Principal,
        db: Database,
        orchestrator: DagsterOrchestrator,
    ) -> schemas.Run:
        """The run's status (refreshed from Dagster) and its event timeline."""
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            run = _run(scope, project, run_id)
            refresh(scope, run, orchestrator)
            return views.run(run, list(scope.run_events(run.id)))

    @post("/{run_id:str}/cancel", operation_id="cancelRun", sync_to_thread=True, status_code=202)
    def cancel(
        self,
        project: str,
        run_id: str,
        principal: Principal,
        db: Database,
        orchestrator: DagsterOrchestrator,
    ) -> schemas.Run:
        """Ask Dagster to terminate the run."""
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            run = _run(scope, project, run_id)
            if run.status in TERMINAL:
                raise Conflict(f"run {run_id} already {run.status}", code="run_finished")
            if run.dagster_run_id:
                try:
                    orchestrator.terminate(run.dagster_run_id)
                except OrchestratorError as exc:
                    raise ServiceUnavailable(str(exc), code="orchestrator_unavailable") from exc
            move(
                run,
                "cancelling" if run.dagster_run_id else "cancelled",
                scope,
                "cancellation requested",
            )
            scope.audit(principal.actor, "run.cancelled", run.id)
            return views.run(run, list(scope.run_events(run.id)))


def _check_may_train(
    scope: TenantScope, principal: Principal, project: Project, kind: str, config: dict
) -> None:
    """The rights checks every run that trains must pass; a refusal is audited."""

    def refuse(error: Exception) -> None:
        scope.audit(
            principal.actor,
            "run.refused",
            project.slug,
            {"reason": getattr(error, "message", str(error)), "code": getattr(error, "code", "")},
        )
        scope.session.commit()  # the refusal is recorded even though the request fails
        raise error

    if not scope.documents(project.id):
        refuse(Conflict("the project has no documents yet: upload some first", code="no_documents"))
    if project.rights_confirmed_at is None:
        refuse(
            Forbidden(
                f"nobody has confirmed that {principal.tenant_slug} holds the rights to train on "
                f"the documents of project {project.slug}: PUT /v1/projects/{project.slug}/"
                "data-rights with confirmed_by first",
                code="data_rights_not_confirmed",
            )
        )
    model_id = config.get("ops", {}).get("adapter", {}).get("config", {}).get("base_model") or (
        project.settings or {}
    ).get("base_model")
    tenant = scope.session.get(Tenant, principal.tenant_id)
    assert tenant is not None
    try:
        check_approved(scope.session, tenant, model_id)
    except ModelNotApproved as exc:
        refuse(Forbidden(str(exc), code="model_not_approved"))
    if kind == "training" and not scope.dataset_versions(project.id):
        refuse(
            Conflict(
                "the project has no dataset version yet: run the pipeline (kind pipeline) once so "
                "the documents become a dataset, then train",
                code="no_dataset",
            )
        )


def _launch(
    db: Database,
    orchestrator: DagsterOrchestrator,
    principal: Principal,
    project_slug: str,
    run_id: str,
    kind: str,
    run_config: dict,
) -> schemas.Run:
    key = partition_key(principal.tenant_slug, project_slug)
    try:
        dagster_id = orchestrator.launch(
            key,
            run_config,
            {RUN_ID_TAG: run_id, "privatune/tenant": principal.tenant_slug},
            job=KINDS[kind],
        )
    except OrchestratorError as exc:
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            failed = scope.run(run_id)
            assert failed is not None
            move(failed, "failed", scope, f"could not start: {exc}")
            failed.error = str(exc)
            scope.add_run_event(run_id, "error", str(exc))
        raise ServiceUnavailable(
            f"the run could not be started: {exc}", code="orchestrator_unavailable"
        ) from exc
    with db.session() as session:
        scope = TenantScope(session, principal.tenant_id)
        submitted = scope.run(run_id)
        assert submitted is not None
        submitted.dagster_run_id = dagster_id
        scope.add_run_event(
            run_id, "status", "submitted to Dagster", data={"dagster_run_id": dagster_id}
        )
        return views.run(submitted, list(scope.run_events(run_id)))
