"""Portal pages: a project's evaluations (each candidate with the promotion gate's verdict, the
scheduled re-evaluations of the active deployment with regressions flagged) and one
evaluation's report: every metric of the candidate, the base model and the active deployment,
each question set, the gate's verdict and reasons, the report's plots, and the questions with
failures first."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.response import Template

from api.portal.pages import page_scope, render
from api.services.deployments import EvaluationService


class PortalEvaluationController(Controller):
    path = "/t/{tenant:str}/projects/{project:str}/evaluations"
    include_in_schema = False

    @get("/", guards=[page_scope("read")], sync_to_thread=True)
    def evaluations(
        self, request: Request, tenant: str, project: str, evaluations: EvaluationService
    ) -> Template:
        return render(
            request,
            "evaluations/list.html",
            active="evaluations",
            project=project,
            history=evaluations.history(project),
        )

    @get("/{evaluation_id:str}", guards=[page_scope("read")], sync_to_thread=True)
    def report(
        self,
        request: Request,
        tenant: str,
        project: str,
        evaluation_id: str,
        evaluations: EvaluationService,
    ) -> Template:
        return render(
            request,
            "evaluations/report.html",
            active="evaluations",
            project=project,
            view=evaluations.report_page(project, evaluation_id),
        )
