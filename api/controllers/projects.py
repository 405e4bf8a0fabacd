"""Projects: each is one Dagster partition `<tenant>__<project>`."""

from __future__ import annotations

from litestar import Controller, get, patch, post

from api import schemas
from api.security import requires_scope
from api.services.projects import ProjectService


class ProjectController(Controller):
    path = "/v1/projects"
    tags = ["projects"]

    @post(
        "/",
        operation_id="createProject",
        sync_to_thread=True,
        status_code=201,
        guards=[requires_scope("admin")],
    )
    def create(self, data: schemas.ProjectCreate, projects: ProjectService) -> schemas.Project:
        """Create a project and register its partition key with Dagster."""
        return projects.create(data.slug, data.name, data.settings)

    @patch(
        "/{project:str}",
        operation_id="updateProject",
        sync_to_thread=True,
        guards=[requires_scope("admin")],
    )
    def update(
        self, project: str, data: schemas.ProjectUpdate, projects: ProjectService
    ) -> schemas.Project:
        """Change the name or settings (given settings replace those fields; others stay)."""
        return projects.update(project, data.name, data.settings)

    @get("/", operation_id="listProjects", sync_to_thread=True, guards=[requires_scope("read")])
    def list(self, projects: ProjectService) -> list[schemas.Project]:
        return projects.list()

    @get(
        "/{project:str}",
        operation_id="getProject",
        sync_to_thread=True,
        guards=[requires_scope("read")],
    )
    def get(self, project: str, projects: ProjectService) -> schemas.Project:
        return projects.get(project)
