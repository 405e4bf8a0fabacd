"""Deployments: versions of a project's model; one is active."""

from __future__ import annotations

from litestar import Controller, get, post

from api import schemas, views
from api.auth import Principal
from api.controllers.projects import get_project
from api.errors import NotFound
from resources.database import Database
from resources.repository import TenantScope


class DeploymentController(Controller):
    path = "/v1/projects/{project:str}/deployments"
    tags = ["deployments"]

    @get("/", operation_id="listDeployments", sync_to_thread=True)
    def list(self, project: str, principal: Principal, db: Database) -> list[schemas.Deployment]:
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            return [
                views.deployment(d, principal.tenant_slug, row.slug)
                for d in scope.deployments(row.id)
            ]

    @post(
        "/{version:int}/activate",
        operation_id="activateDeployment",
        sync_to_thread=True,
        status_code=200,
    )
    def activate(
        self, project: str, version: int, principal: Principal, db: Database
    ) -> schemas.Deployment:
        """Make this version the active one (also how to roll back)."""
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            deployment = scope.deployment(row.id, version)
            if deployment is None:
                raise NotFound(
                    f"project {project} has no deployment version {version}",
                    code="deployment_not_found",
                )
            scope.activate(deployment)
            scope.audit(principal.actor, "deployment.activated", f"{row.slug}@{version}")
            return views.deployment(deployment, principal.tenant_slug, row.slug)
