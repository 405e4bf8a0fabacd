"""Sensors: documents waiting for the malware scanner are retried (fail closed, never skipped)."""

from __future__ import annotations

import dagster as dg
from sqlalchemy import select

from resources.database import Database
from resources.repository import partition_key
from resources.tables import Deployment, Document, Project, Tenant

ONBOARDING_JOB = "project_onboarding"


def partitions_with_pending_scans(db: Database) -> list[str]:
    with db.session() as session:
        rows = session.execute(
            select(Tenant.slug, Project.slug)
            .join(Project, Project.tenant_id == Tenant.id)
            .join(Document, Document.project_id == Project.id)
            .where(Document.status == "pending_scan")
            .distinct()
        ).all()
    return sorted(partition_key(t, p) for t, p in rows)


@dg.sensor(
    job_name=ONBOARDING_JOB,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-runs onboarding for projects whose documents wait in pending_scan.",
)
def pending_scan_retry(context: dg.SensorEvaluationContext, db: Database):
    keys = partitions_with_pending_scans(db)
    known = set(context.instance.get_dynamic_partitions("tenant_project"))
    for key in keys:
        if key in known:
            # One request per partition and 5-minute window: retries keep coming while scans wait.
            window = int(context.cursor or 0) + 1
            yield dg.RunRequest(run_key=f"{key}:{window}", partition_key=key)
    context.update_cursor(str(int(context.cursor or 0) + 1))


# --- evaluation: every new adapter, and every active deployment nightly -----------------------

PIPELINE_JOB = "project_pipeline"
EVALUATION_JOB = "project_evaluation"
REEVALUATION_JOB = "deployment_reevaluation"


def partitions_with_active_deployments(db: Database) -> list[str]:
    with db.session() as session:
        rows = session.execute(
            select(Tenant.slug, Project.slug)
            .join(Project, Project.tenant_id == Tenant.id)
            .join(Deployment, Deployment.project_id == Project.id)
            .where(Deployment.status == "active")
            .distinct()
        ).all()
    return sorted(partition_key(t, p) for t, p in rows)


@dg.asset_sensor(
    asset_key=dg.AssetKey("adapter"),
    job_name=EVALUATION_JOB,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Evaluates each adapter materialised outside the full pipeline (a training run): "
        "eval_report against the base model and the active deployment, then deployment_package "
        "if the promotion gate passes."
    ),
)
def new_adapter_evaluation(context: dg.SensorEvaluationContext, asset_event):
    event = asset_event.dagster_event
    partition = event.partition if event is not None else None
    if not partition:
        return dg.SkipReason("adapter materialisation without a partition")
    run = context.instance.get_run_by_id(asset_event.run_id)
    if run is not None and run.job_name == PIPELINE_JOB:
        return dg.SkipReason(f"run {asset_event.run_id} evaluates its own adapter")
    source = asset_event.run_id or f"event-{asset_event.timestamp:.6f}"
    return dg.RunRequest(run_key=f"{source}:{partition}", partition_key=partition)


@dg.schedule(
    cron_schedule="0 2 * * *",
    job_name=REEVALUATION_JOB,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly: every active deployment re-evaluated on its project's current gold split.",
)
def nightly_reevaluation(context: dg.ScheduleEvaluationContext, db: Database):
    known = set(context.instance.get_dynamic_partitions("tenant_project"))
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    requests = [
        dg.RunRequest(run_key=f"{key}:{day}", partition_key=key)
        for key in partitions_with_active_deployments(db)
        if key in known
    ]
    return requests or dg.SkipReason("no active deployments")
