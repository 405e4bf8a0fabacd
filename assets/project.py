"""What an asset needs to know about the tenant-project its partition stands for, and the run
timeline it reports to (the `run_events` table the API reads)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dagster as dg

from assets.failures import StageFailure, explain, failure_data, to_dagster
from resources import request_context
from resources.database import Database
from resources.logs import get_logger
from resources.object_store import ObjectStoreResource, ProjectStore
from resources.project_settings import InvalidSetting, ProjectSettings
from resources.repository import TenantScope, split_partition_key, tenant_by_slug
from resources.run_states import move
from resources.tables import Run

RUN_ID_TAG = "privatune/run_id"
log = get_logger("privatune.pipeline")


@dataclass(frozen=True)
class ProjectHandle:
    tenant: str
    project: str
    tenant_id: str
    project_id: str
    settings: ProjectSettings
    store: ProjectStore
    db: Database

    @contextmanager
    def scope(self) -> Iterator[TenantScope]:
        with self.db.session() as session:
            yield TenantScope(session, self.tenant_id)


def project_handle(
    context: dg.AssetExecutionContext, db: Database, store: ObjectStoreResource
) -> ProjectHandle:
    tenant_slug, project_slug = split_partition_key(context.partition_key)
    with db.session() as session:
        tenant = tenant_by_slug(session, tenant_slug)
        project = TenantScope(session, tenant.id).project(project_slug) if tenant else None
        if tenant is None or project is None:
            failure = StageFailure(
                _asset_name(context),
                f"partition {context.partition_key}: no project {project_slug!r} for tenant "
                f"{tenant_slug!r} in the application database",
                f"create the project through the API first (POST /v1/projects with slug "
                f"{project_slug!r}, as tenant {tenant_slug!r}), or delete the stale partition "
                "from Dagster",
                code="project_not_found",
                details={"partition": context.partition_key},
            )
            # Outside stage() (no run row to record it in): Dagster shows the text.
            raise to_dagster(failure) from failure
        problem = None
        try:
            settings = ProjectSettings.load(project.settings)
        except InvalidSetting as exc:
            settings, problem = ProjectSettings(), exc
        handle = ProjectHandle(
            tenant=tenant_slug,
            project=project_slug,
            tenant_id=tenant.id,
            project_id=project.id,
            settings=settings,
            store=store.project(tenant_slug, project_slug),
            db=db,
        )
    if problem is not None:
        # Recorded as this stage's failure, so the run says which setting to fix.
        name = _asset_name(context)
        with stage(context, handle, name):
            raise invalid_setting(name, problem, project_slug)
    return handle


def invalid_setting(
    stage_name: str, exc: InvalidSetting, project: str = "<project>"
) -> StageFailure:
    """`stage_name` cannot run with the project's stored setting `exc.setting`."""
    return StageFailure(
        stage_name,
        f"project setting {exc.setting} is invalid: {exc.message}",
        f"PATCH /v1/projects/{project} with a valid settings.{exc.setting}, then run again",
        code="invalid_setting",
        details={"setting": exc.setting},
    )


def run_row(scope: TenantScope, context: dg.AssetExecutionContext, project_id: str) -> Run:
    """Our run row for this Dagster run: the one the API created, or a new one for runs
    launched from the Dagster UI."""
    tagged = context.run.tags.get(RUN_ID_TAG)
    run = scope.run(tagged) if tagged else None
    if run is None:
        run = scope.run_by_dagster_id(context.run.run_id)
    if run is None:
        kind = "training" if context.job_name == "project_training" else "pipeline"
        run = scope.add_run(project_id, kind, {"source": "dagster"})
        run.dagster_run_id = context.run.run_id
    if run.dagster_run_id != context.run.run_id and run.status in ("failed", "cancelled"):
        # re-executed from the Dagster UI: the same run of ours, tried again
        move(run, "queued", scope, "re-executed from Dagster", dagster_run_id=context.run.run_id)
        run.dagster_run_id = context.run.run_id
    if run.status == "queued" and run.kind != "training":
        move(run, "running", scope, "Dagster started the run")
    return run


def _asset_name(context: dg.AssetExecutionContext) -> str:
    try:
        return context.asset_key.to_user_string()
    except Exception:  # a multi-asset step: the op's name
        return context.op.name


@contextmanager
def stage(
    context: dg.AssetExecutionContext, handle: ProjectHandle, name: str
) -> Iterator[dict[str, Any]]:
    """A stage of the run, recorded in its timeline (`_stage`), in the request context of the
    API request that launched the run (its id is a run tag), so the stage's audit rows and log
    lines carry that request id."""
    with (
        request_context.bound(
            request_id=context.run.tags.get(request_context.REQUEST_ID_TAG),
            tenant=handle.tenant,
            actor="dagster",
        ),
        _stage(context, handle, name) as figures,
    ):
        yield figures


@contextmanager
def _stage(
    context: dg.AssetExecutionContext, handle: ProjectHandle, name: str
) -> Iterator[dict[str, Any]]:
    """Record the stage's start, end, duration and outcome in the run's timeline. The caller
    may put figures into the yielded dict; they are stored with the finish event.

    On an exception the `stage_failed` event says what went wrong and what to do
    (`assets.failures.explain`), and the step fails with a `dagster.Failure` carrying the same
    text and details (the original exception stays chained to it, traceback and all), so the
    Dagster UI says it too. Interruptions (a cancelled run) and Dagster's own control-flow
    exceptions (RetryRequested) are re-raised unchanged."""
    with handle.scope() as scope:
        run_id = run_row(scope, context, handle.project_id).id
        scope.add_run_event(run_id, "stage_started", f"{name} started", stage=name)
    where = {"stage": name, "run_id": run_id, "partition": context.partition_key}
    log.info("stage_started", **where, dagster_run_id=context.run.run_id)
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        yield figures
    except BaseException as exc:
        failure = explain(exc, name, project=handle.project, run_id=run_id)
        seconds = round(time.perf_counter() - started, 3)
        # The code only: the failure's text and details can quote documents.
        log.error("stage_failed", **where, error_code=failure.code, seconds=seconds)
        try:
            with handle.scope() as scope:
                scope.add_run_event(
                    run_id,
                    "stage_failed",
                    str(failure),
                    stage=name,
                    data=failure_data(failure, seconds=seconds),
                )
        except Exception as record_error:  # e.g. the database is the problem: still fail right
            context.log.warning(f"could not record the failure of {name}: {record_error}")
        if not isinstance(exc, Exception) or isinstance(exc, dg.RetryRequested):
            raise
        raise to_dagster(failure, allow_retries=getattr(exc, "allow_retries", None)) from exc
    seconds = round(time.perf_counter() - started, 3)
    with handle.scope() as scope:
        scope.add_run_event(
            run_id,
            "stage_finished",
            f"{name} finished in {seconds:.1f} s",
            stage=name,
            data={"seconds": seconds, **figures},
        )
    log.info("stage_finished", **where, seconds=seconds)


def record_check_failure(
    handle: ProjectHandle,
    context: dg.AssetExecutionContext,
    check_name: str,
    failure: StageFailure,
    *,
    kind: str = "check_failed",
    scope: TenantScope | None = None,
    **extra: Any,
) -> None:
    """Put a blocking asset check's failure in the run's timeline, before the asset yields the
    failing `AssetCheckResult`. Dagster then fails the step (DagsterAssetCheckFailedError, after
    the asset materialised), skips what depends on the asset and fails the run; the event is
    what the API tells the person. `scope`: record in the caller's transaction."""
    data = failure_data(failure, **extra, check=check_name)
    if scope is None:
        with handle.scope() as own:
            run_id = run_row(own, context, handle.project_id).id
            own.add_run_event(run_id, kind, str(failure), stage=failure.stage, data=data)
    else:
        run_id = run_row(scope, context, handle.project_id).id
        scope.add_run_event(run_id, kind, str(failure), stage=failure.stage, data=data)
    context.log.error(f"check {check_name}: {failure}")
