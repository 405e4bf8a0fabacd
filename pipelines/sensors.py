"""Sensors: documents waiting for the malware scanner are retried (fail closed, never skipped)."""

from __future__ import annotations

import dagster as dg
from sqlalchemy import select

from resources.database import Database
from resources.repository import partition_key
from resources.tables import Document, Project, Tenant

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
