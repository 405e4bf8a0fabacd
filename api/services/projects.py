"""Projects: each is one Dagster partition `<tenant>__<project>`; settings are the typed
project settings (stored as the fields the tenant set)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select

from api import schemas, views
from api.errors import BadRequest, Conflict, ServiceUnavailable
from api.security import Principal
from api.services.base import TenantService, get_project
from resources.database import Database
from resources.object_store import validate_slug
from resources.orchestrator import DagsterOrchestrator, OrchestratorError
from resources.project_settings import (
    InvalidSetting,
    ProjectSettingsChange,
    ServingRuntime,
    validate_settings_change,
)
from resources.repository import partition_key
from resources.tables import DatasetExample, Deployment, Document, Evaluation, Run


def validate_settings(
    settings: ProjectSettingsChange | Mapping[str, Any], stored: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The given settings as stored (None: given as null, back to the default), checked over
    the project's `stored` ones; BadRequest (invalid_settings) naming the one to fix."""
    try:
        change = ProjectSettingsChange.parse(settings)
        validate_settings_change(stored or {}, change)
    except InvalidSetting as exc:
        raise settings_error(exc) from exc
    return change.given()


def validate_runtime(runtime: ServingRuntime) -> None:
    """BadRequest (invalid_settings) when the runtime lacks what its kind needs."""
    try:
        runtime.check()
    except InvalidSetting as exc:
        raise settings_error(exc) from exc


def settings_error(exc: InvalidSetting) -> BadRequest:
    return BadRequest(str(exc), code="invalid_settings", details={"setting": exc.setting})


class ProjectService(TenantService):
    def __init__(
        self, db: Database, principal: Principal, orchestrator: DagsterOrchestrator
    ) -> None:
        super().__init__(db, principal)
        self.orchestrator = orchestrator

    def create(
        self, slug: str, name: str | None, settings: schemas.ProjectSettingsChange | None
    ) -> schemas.Project:
        """Registers the partition key with Dagster first: nothing is stored without it."""
        try:
            slug = validate_slug(slug, "project")
        except ValueError as exc:
            raise BadRequest(str(exc), code="invalid_slug") from exc
        values = validate_settings(settings) if settings else {}
        key = partition_key(self.tenant_slug, slug)
        with self.scope() as scope:
            if scope.project(slug) is not None:
                raise Conflict(f"project {slug!r} already exists", code="project_exists")
        try:
            self.orchestrator.add_partition(key)
        except OrchestratorError as exc:
            raise ServiceUnavailable(str(exc), code="orchestrator_unavailable") from exc
        with self.scope() as scope:
            if scope.project(slug) is not None:
                raise Conflict(f"project {slug!r} already exists", code="project_exists")
            project = scope.create_project(slug, name or slug, values)
            scope.audit(self.actor, "project.created", slug, {"partition_key": key})
            return views.project(project, self.tenant_slug)

    def update(
        self,
        project: str,
        name: str | None,
        settings: schemas.ProjectSettingsChange | Mapping[str, Any] | None,
    ) -> schemas.Project:
        """Given settings (a change, or its JSON form) replace those fields; the others stay."""
        with self.scope() as scope:
            row = get_project(scope, project)
            changes = validate_settings(settings, row.settings) if settings else {}
            if name:
                row.name = name
            if settings:
                try:
                    row.settings = validate_settings_change(row.settings or {}, settings)
                except InvalidSetting as exc:
                    raise settings_error(exc) from exc
            scope.audit(self.actor, "project.updated", row.slug, {"settings": sorted(changes)})
            return views.project(row, self.tenant_slug)

    def list(self) -> list[schemas.Project]:
        with self.scope() as scope:
            return [views.project(p, self.tenant_slug) for p in scope.projects()]

    def get(self, project: str) -> schemas.Project:
        with self.scope() as scope:
            return views.project(get_project(scope, project), self.tenant_slug)


def _counts(session: Any, column: Any, key: Any, *where: Any) -> dict[Any, int]:
    """{key: count} in one GROUP BY query."""
    from sqlalchemy import func, select

    return {
        k: int(n)
        for k, n in session.execute(select(key, func.count(column)).where(*where).group_by(key))
    }


class ProjectOverviewService(TenantService):
    """What the portal shows at a glance; one query per kind of row, never one per project."""

    def summaries(self) -> list[dict[str, Any]]:

        with self.scope() as scope:
            projects = list(scope.projects())
            ids = [p.id for p in projects]
            if not ids:
                return []
            session = scope.session
            documents = _counts(
                session,
                Document.id,
                Document.project_id,
                Document.tenant_id == self.tenant_id,
                Document.project_id.in_(ids),
            )
            latest = {}
            newest = (
                select(Run.project_id, func.max(Run.created_at).label("at"))
                .where(Run.tenant_id == self.tenant_id, Run.project_id.in_(ids))
                .group_by(Run.project_id)
                .subquery()
            )
            for run in session.scalars(
                select(Run).join(
                    newest,
                    (Run.project_id == newest.c.project_id) & (Run.created_at == newest.c.at),
                )
            ):
                latest[run.project_id] = run
            active = {
                d.project_id: d
                for d in session.scalars(
                    select(Deployment).where(
                        Deployment.tenant_id == self.tenant_id,
                        Deployment.project_id.in_(ids),
                        Deployment.status == "active",
                    )
                )
            }
            return [
                {
                    "slug": p.slug,
                    "name": p.name,
                    "created_at": p.created_at,
                    "documents": documents.get(p.id, 0),
                    "latest_run": latest.get(p.id),
                    "active_version": active[p.id].version if p.id in active else None,
                }
                for p in projects
            ]

    def overview(self, project: str) -> dict[str, Any]:
        """The pipeline's stages with their counts, the latest run, and what needs attention."""

        with self.scope() as scope:
            row = get_project(scope, project)
            session = scope.session
            by_status = _counts(
                session,
                Document.id,
                Document.status,
                Document.tenant_id == self.tenant_id,
                Document.project_id == row.id,
            )
            generation = scope.latest_generation(row.id)
            examples: dict[str, int] = {}
            if generation:
                examples = _counts(
                    session,
                    DatasetExample.id,
                    DatasetExample.status,
                    DatasetExample.tenant_id == self.tenant_id,
                    DatasetExample.project_id == row.id,
                    DatasetExample.generation == generation,
                )
            versions = scope.dataset_versions(row.id)
            runs = scope.runs(row.id, limit=1)
            active = scope.active_deployment(row.id)
            latest_eval = session.scalar(
                select(Evaluation)
                .where(Evaluation.tenant_id == self.tenant_id, Evaluation.project_id == row.id)
                .order_by(Evaluation.created_at.desc())
                .limit(1)
            )
            total_docs = sum(by_status.values())
            stages = [
                {"name": "raw documents", "count": total_docs, "href": "documents"},
                {
                    "name": "ready (normalised)",
                    "count": by_status.get("ready", 0),
                    "href": "documents",
                },
                {
                    "name": "held back",
                    "count": sum(
                        by_status.get(s, 0)
                        for s in ("quarantined", "excluded", "failed", "pending_scan")
                    ),
                    "href": "documents",
                    "attention": bool(by_status.get("quarantined") or by_status.get("failed")),
                },
                {"name": "examples", "count": sum(examples.values()), "href": "dataset"},
                {"name": "dataset versions", "count": len(versions), "href": "dataset"},
                {
                    "name": "evaluations",
                    "count": len(scope.evaluations(row.id, 500)),
                    "href": "evaluations",
                },
                {
                    "name": "deployment",
                    "count": active.version if active else 0,
                    "href": "deployments",
                    "label": f"v{active.version}" if active else "none",
                },
            ]
            attention = []
            if by_status.get("quarantined"):
                attention.append(
                    {
                        "text": f"{by_status['quarantined']} document(s) quarantined: see why",
                        "href": "documents?status=quarantined",
                    }
                )
            if by_status.get("pending_scan"):
                attention.append(
                    {
                        "text": f"{by_status['pending_scan']} document(s) wait for the malware scanner",
                        "href": "documents?status=pending_scan",
                    }
                )
            if examples.get("pending"):
                attention.append(
                    {
                        "text": f"{examples['pending']} example(s) wait for review",
                        "href": "dataset?status=pending",
                    }
                )
            if latest_eval is not None and not latest_eval.passed:
                attention.append(
                    {
                        "text": "the promotion gate blocked the latest candidate: "
                        + "; ".join(latest_eval.reasons or []),
                        "href": f"evaluations/{latest_eval.id}",
                    }
                )
            if runs and runs[0].status == "failed":
                attention.append(
                    {
                        "text": f"the latest run failed: {runs[0].error or ''}",
                        "href": f"runs/{runs[0].id}",
                    }
                )
            if row.rights_confirmed_at is None:
                attention.append(
                    {
                        "text": "nobody has confirmed the rights to train on these documents yet",
                        "href": "settings#data-rights",
                    }
                )
            return {
                "project": row,
                "stages": stages,
                "documents_by_status": by_status,
                "examples_by_status": examples,
                "latest_run": runs[0] if runs else None,
                "active": active,
                "latest_evaluation": latest_eval,
                "attention": attention,
            }
