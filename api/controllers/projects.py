"""Projects: each is one Dagster partition `<tenant>__<project>`."""

from __future__ import annotations

import msgspec
from litestar import Controller, get, patch, post

from api import schemas, views
from api.auth import Principal
from api.errors import BadRequest, Conflict, NotFound, ServiceUnavailable
from resources.database import Database
from resources.object_store import validate_slug
from resources.orchestrator import DagsterOrchestrator, OrchestratorError
from resources.repository import TenantScope, partition_key
from resources.tables import Project


def validate_settings(settings: schemas.ProjectSettings) -> dict:
    """Plain settings, or BadRequest saying which one to fix."""
    values = msgspec.to_builtins(settings)
    if values.get("train_steps") is not None and not 1 <= values["train_steps"] <= 100_000:
        raise BadRequest(
            "settings.train_steps must be between 1 and 100000", code="invalid_settings"
        )
    if values.get("pii_policy") not in (None, "redact", "block", "allow"):
        raise BadRequest(
            "settings.pii_policy must be redact, block or allow", code="invalid_settings"
        )
    for name in ("near_dup_threshold", "quality_threshold"):
        if values.get(name) is not None and not 0.0 <= values[name] <= 1.0:
            raise BadRequest(f"settings.{name} must be between 0 and 1", code="invalid_settings")
    if values.get("pii_recognizers"):
        from assets.pii.recognizers import CustomRecognizer

        for recognizer in values["pii_recognizers"]:
            try:
                CustomRecognizer.from_dict(recognizer).validate()
            except (ValueError, TypeError) as exc:
                raise BadRequest(
                    f"settings.pii_recognizers: {exc}", code="invalid_settings"
                ) from exc
    return values


def get_project(scope: TenantScope, slug: str) -> Project:
    project = scope.project(slug)
    if project is None:
        raise NotFound(f"project {slug!r} not found for this tenant", code="project_not_found")
    return project


class ProjectController(Controller):
    path = "/v1/projects"
    tags = ["projects"]

    @post("/", operation_id="createProject", sync_to_thread=True, status_code=201)
    def create(
        self,
        data: schemas.ProjectCreate,
        principal: Principal,
        db: Database,
        orchestrator: DagsterOrchestrator,
    ) -> schemas.Project:
        """Create a project and register its partition key with Dagster."""
        try:
            slug = validate_slug(data.slug, "project")
        except ValueError as exc:
            raise BadRequest(str(exc), code="invalid_slug") from exc
        settings = validate_settings(data.settings) if data.settings else {}
        key = partition_key(principal.tenant_slug, slug)
        try:
            orchestrator.add_partition(key)
        except OrchestratorError as exc:
            raise ServiceUnavailable(str(exc), code="orchestrator_unavailable") from exc
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            if scope.project(slug) is not None:
                raise Conflict(f"project {slug!r} already exists", code="project_exists")
            project = scope.create_project(slug, data.name or slug, settings)
            scope.audit(principal.actor, "project.created", slug, {"partition_key": key})
            return views.project(project, principal.tenant_slug)

    @patch("/{project:str}", operation_id="updateProject", sync_to_thread=True)
    def update(
        self, project: str, data: schemas.ProjectUpdate, principal: Principal, db: Database
    ) -> schemas.Project:
        """Change the name or settings (given settings replace those fields; others stay)."""
        changes = validate_settings(data.settings) if data.settings else {}
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            if data.name:
                row.name = data.name
            row.settings = {**(row.settings or {}), **changes}
            scope.audit(principal.actor, "project.updated", row.slug, {"settings": sorted(changes)})
            return views.project(row, principal.tenant_slug)

    @get("/", operation_id="listProjects", sync_to_thread=True)
    def list(self, principal: Principal, db: Database) -> list[schemas.Project]:
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            return [views.project(p, principal.tenant_slug) for p in scope.projects()]

    @get("/{project:str}", operation_id="getProject", sync_to_thread=True)
    def get(self, project: str, principal: Principal, db: Database) -> schemas.Project:
        with db.session() as session:
            return views.project(
                get_project(TenantScope(session, principal.tenant_id), project),
                principal.tenant_slug,
            )
