"""What an asset needs to know about the tenant-project its partition stands for, and the run
timeline it reports to (the `run_events` table the API reads)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dagster as dg

from resources.database import Database
from resources.object_store import ObjectStoreResource, ProjectStore
from resources.repository import TenantScope, split_partition_key, tenant_by_slug
from resources.run_states import move
from resources.tables import Run

RUN_ID_TAG = "privatune/run_id"


@dataclass(frozen=True)
class ProjectHandle:
    tenant: str
    project: str
    tenant_id: str
    project_id: str
    settings: dict[str, Any]
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
            raise dg.Failure(
                f"partition {context.partition_key}: no project {project_slug!r} for tenant "
                f"{tenant_slug!r} in the application database; create it through the API first"
            )
        return ProjectHandle(
            tenant=tenant_slug,
            project=project_slug,
            tenant_id=tenant.id,
            project_id=project.id,
            settings=dict(project.settings or {}),
            store=store.project(tenant_slug, project_slug),
            db=db,
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


@contextmanager
def stage(
    context: dg.AssetExecutionContext, handle: ProjectHandle, name: str
) -> Iterator[dict[str, Any]]:
    """Record the stage's start, end, duration and outcome in the run's timeline. The caller
    may put figures into the yielded dict; they are stored with the finish event."""
    with handle.scope() as scope:
        run_id = run_row(scope, context, handle.project_id).id
        scope.add_run_event(run_id, "stage_started", f"{name} started", stage=name)
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        yield figures
    except BaseException as exc:
        with handle.scope() as scope:
            scope.add_run_event(
                run_id,
                "stage_failed",
                f"{name} failed: {str(exc) or type(exc).__name__}",
                stage=name,
                data={"seconds": round(time.perf_counter() - started, 3)},
            )
        raise
    seconds = round(time.perf_counter() - started, 3)
    with handle.scope() as scope:
        scope.add_run_event(
            run_id,
            "stage_finished",
            f"{name} finished in {seconds:.1f} s",
            stage=name,
            data={"seconds": seconds, **figures},
        )
