"""Runs: materialisations of the project's graph through Dagster's run queue."""

from __future__ import annotations

from litestar import Controller, get, post

from api import schemas, views
from api.auth import Principal
from api.controllers.projects import get_project
from api.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from assets.project import RUN_ID_TAG
from resources.database import Database
from resources.orchestrator import DagsterOrchestrator, OrchestratorError
from resources.repository import TenantScope, partition_key
from resources.tables import Run

TERMINAL = {"succeeded", "failed", "cancelled"}


def _run_config(data: schemas.RunCreate) -> dict:
    ops: dict = {}
    if data.train_steps is not None:
        if not 1 <= data.train_steps <= 100_000:
            raise BadRequest("train_steps must be between 1 and 100000", code="invalid_run_config")
        ops["adapter"] = {"config": {"max_steps": data.train_steps}}
    if data.eval_max_questions is not None:
        if not 0 <= data.eval_max_questions <= 10_000:
            raise BadRequest(
                "eval_max_questions must be between 0 and 10000", code="invalid_run_config"
            )
        ops["eval_report"] = {"config": {"max_questions": data.eval_max_questions}}
    return {"ops": ops} if ops else {}


def refresh(scope: TenantScope, run: Run, orchestrator: DagsterOrchestrator) -> None:
    """Bring our row's status up to date with Dagster's (while the run is not finished)."""
    if run.status in TERMINAL or not run.dagster_run_id:
        return
    try:
        info = orchestrator.run(run.dagster_run_id)
    except OrchestratorError:
        return  # keep the last known status; the caller can ask again
    if info.status != run.status:
        run.status = info.status
        scope.add_run_event(
            run.id,
            "status",
            f"Dagster run is {info.dagster_status}",
            data={"dagster_status": info.dagster_status},
        )
        if info.status == "failed":
            failed = [s["stepKey"] for s in info.steps if s["status"] == "FAILURE"]
            run.error = (
                f"step(s) failed: {', '.join(failed) or 'unknown'}; see the run in the Dagster UI"
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
        """Materialise the whole graph for this project (documents to deployment) through Dagster."""
        run_config = _run_config(data or schemas.RunCreate())
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            if not scope.documents(row.id):
                raise Conflict(
                    "the project has no documents yet: upload some first", code="no_documents"
                )
            run = scope.add_run(row.id, "pipeline", run_config)
            run_id, project_slug = run.id, row.slug
            scope.add_run_event(run.id, "status", "run created")
            scope.audit(
                principal.actor,
                "run.created",
                run.id,
                {"project": project_slug, "config": run_config},
            )
        key = partition_key(principal.tenant_slug, project_slug)
        try:
            dagster_id = orchestrator.launch(
                key, run_config, {RUN_ID_TAG: run_id, "privatune/tenant": principal.tenant_slug}
            )
        except OrchestratorError as exc:
            with db.session() as session:
                scope = TenantScope(session, principal.tenant_id)
                failed = scope.run(run_id)
                assert failed is not None
                failed.status, failed.error = "failed", str(exc)
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

    @get("/", operation_id="listRuns", sync_to_thread=True)
    def list(self, project: str, principal: Principal, db: Database) -> list[schemas.Run]:
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            return [views.run(r) for r in scope.runs(get_project(scope, project).id)]

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
            run.status = "cancelling" if run.dagster_run_id else "cancelled"
            scope.add_run_event(run.id, "status", "cancellation requested")
            scope.audit(principal.actor, "run.cancelled", run.id)
            return views.run(run, list(scope.run_events(run.id)))
