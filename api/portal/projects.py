"""Portal pages: the tenant's projects at a glance, creating one, and a project's overview
(its pipeline as stages with counts, the latest run, what needs attention)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.errors import AppError
from api.portal.pages import flash, page_scope, redirect, render
from api.services.projects import ProjectOverviewService, ProjectService

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


class PortalProjectController(Controller):
    path = "/t/{tenant:str}/projects"
    include_in_schema = False

    @get("/", guards=[page_scope("read")], sync_to_thread=True)
    def projects(self, request: Request, tenant: str, overview: ProjectOverviewService) -> Template:
        return render(
            request,
            "projects/list.html",
            active="projects",
            projects=overview.summaries(),
            error=None,
            values={},
        )

    @post("/", guards=[page_scope("admin")], sync_to_thread=True)
    def create(
        self,
        request: Request,
        tenant: str,
        data: Form,
        projects: ProjectService,
        overview: ProjectOverviewService,
    ) -> Redirect | Template:
        slug = str(data.get("slug") or "").strip()
        name = str(data.get("name") or "").strip() or None
        try:
            projects.create(slug, name, None)
        except AppError as exc:
            return render(
                request,
                "projects/list.html",
                status_code=exc.status_code,
                active="projects",
                projects=overview.summaries(),
                error=exc.message,
                values={"slug": slug, "name": name or ""},
            )
        flash(request, f"Project {slug} created. Upload its documents next.")
        return redirect(f"/t/{tenant}/projects/{slug}/documents")

    @get("/{project:str}", guards=[page_scope("read")], sync_to_thread=True)
    def overview(
        self, request: Request, tenant: str, project: str, overview: ProjectOverviewService
    ) -> Template:
        return render(
            request,
            "projects/overview.html",
            active="overview",
            project=project,
            view=overview.overview(project),
        )
