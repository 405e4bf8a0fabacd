"""Deployments (versions of a project's model; one is active: activate, roll back, choose the
serving runtime) and evaluations (each candidate's promotion verdict, each nightly
re-evaluation)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post, put
from litestar.response import Response

from api import schemas
from api.schemas import INT32_MAX, checked_parameter
from api.security import requires_scope
from api.services.deployments import DeploymentService, EvaluationService

# A deployment's version (an integer column): larger ones cannot exist.
Version = Annotated[int, checked_parameter(maximum=INT32_MAX)]


class DeploymentController(Controller):
    path = "/v1/projects/{project:str}/deployments"
    tags = ["deployments"]

    @get("/", operation_id="listDeployments", sync_to_thread=True, guards=[requires_scope("read")])
    def list(self, project: str, deployments: DeploymentService) -> list[schemas.Deployment]:
        return deployments.list(project)

    @get(
        "/{version:int}",
        operation_id="getDeployment",
        sync_to_thread=True,
        guards=[requires_scope("read")],
    )
    def detail(
        self, project: str, version: Version, deployments: DeploymentService
    ) -> schemas.Deployment:
        return deployments.get(project, version)

    @post(
        "/{version:int}/activate",
        operation_id="activateDeployment",
        sync_to_thread=True,
        status_code=200,
        guards=[requires_scope("deploy")],
    )
    def activate(
        self, project: str, version: Version, deployments: DeploymentService
    ) -> schemas.Deployment:
        """Make this version the active one (any version, older or newer: audited)."""
        return deployments.activate(project, version)

    @post(
        "/rollback",
        operation_id="rollbackDeployment",
        sync_to_thread=True,
        status_code=200,
        guards=[requires_scope("deploy")],
    )
    def rollback(
        self, project: str, data: schemas.Rollback, deployments: DeploymentService
    ) -> schemas.Deployment:
        """Roll back to an earlier version: `to_version`, or the newest one older than the
        active version. Audited with the versions and the reason."""
        return deployments.rollback(project, data.to_version, data.reason)

    @put(
        "/{version:int}/runtime",
        operation_id="setDeploymentRuntime",
        sync_to_thread=True,
        guards=[requires_scope("deploy")],
    )
    def set_runtime(
        self,
        project: str,
        version: Version,
        data: schemas.ServingRuntime,
        deployments: DeploymentService,
    ) -> schemas.Deployment:
        """Serve this deployment with another runtime (transformers, llama_cpp, ollama, openai)
        from its next request on; audited."""
        return deployments.set_runtime(project, version, data)


class EvaluationController(Controller):
    path = "/v1/projects/{project:str}/evaluations"
    tags = ["evaluations"]
    guards = [requires_scope("read")]

    @get("/", operation_id="listEvaluations", sync_to_thread=True)
    def list(
        self, project: str, evaluations: EvaluationService, limit: int = 50
    ) -> list[schemas.Evaluation]:
        """Newest first: candidates (with the promotion gate's verdict) and scheduled
        re-evaluations of the active deployment (`passed: false` is a regression)."""
        return evaluations.list(project, limit)

    @get("/{evaluation_id:str}/report", operation_id="getEvaluationReport", sync_to_thread=True)
    def report(
        self,
        project: str,
        evaluation_id: str,
        evaluations: EvaluationService,
        format: Annotated[str, checked_parameter(enum=["json", "html"])] = "json",
    ) -> Response:
        """The full report: `format=json` (per-question rows, failures first) or `html`."""
        found = evaluations.report(project, evaluation_id, format)
        return Response(found.data, media_type=found.media_type)
