"""Portal page: a project's deployments (every version with its runtime, adapter, index and
dataset versions, the promotion gate's verdict and evaluation figures, the audited history),
and for the `deploy` scope (admins, owners) activating a version, rolling back with a reason
and changing a version's serving runtime. The rules are DeploymentService's."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api import schemas
from api.errors import AppError, BadRequest
from api.portal.pages import flash, may, page_scope, redirect, render
from api.schemas import INT32_MAX, checked_parameter
from api.services.deployments import DeploymentService

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Version = Annotated[int, checked_parameter(maximum=INT32_MAX)]
RUNTIME_KINDS = ("transformers", "llama_cpp", "ollama", "openai")
RUNTIME_FIELDS = (
    "base_url",
    "model",
    "api_key_env",
    "timeout_s",
    "n_threads",
    "n_ctx",
    "max_batch",
)


def runtime_from_form(data: dict[str, Any]) -> schemas.ServingRuntime:
    """The form's runtime (blank fields left to the runtime's defaults); BadRequest naming the
    field that does not fit."""
    fields = {
        name: str(data[name]).strip()
        for name in ("kind", *RUNTIME_FIELDS)
        if str(data.get(name) or "").strip()
    }
    try:
        return msgspec.convert(fields, schemas.ServingRuntime, strict=False)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"runtime: {exc}", code="invalid_settings") from exc


class PortalDeploymentController(Controller):
    path = "/t/{tenant:str}/projects/{project:str}/deployments"
    include_in_schema = False

    def _page(
        self,
        request: Request,
        project: str,
        deployments: DeploymentService,
        status_code: int = 200,
        error: dict[str, str] | None = None,
        values: dict[str, Any] | None = None,
    ) -> Template:
        return render(
            request,
            "deployments/list.html",
            active="deployments",
            project=project,
            status_code=status_code,
            view=deployments.overview(project),
            can_deploy=may(request, "deploy"),
            runtime_kinds=RUNTIME_KINDS,
            error=error or {},
            values=values or {},
        )

    @get("/", guards=[page_scope("read")], sync_to_thread=True)
    def deployments_page(
        self, request: Request, tenant: str, project: str, deployments: DeploymentService
    ) -> Template:
        return self._page(request, project, deployments)

    @post("/{version:int}/activate", guards=[page_scope("deploy")], sync_to_thread=True)
    def activate(
        self,
        request: Request,
        tenant: str,
        project: str,
        version: Version,
        deployments: DeploymentService,
    ) -> Redirect | Template:
        try:
            deployments.activate(project, version)
        except AppError as exc:
            return self._page(
                request, project, deployments, exc.status_code, {"activate": exc.message}
            )
        flash(request, f"Version {version} is now the active deployment.")
        return redirect(f"/t/{tenant}/projects/{project}/deployments")

    @post("/rollback", guards=[page_scope("deploy")], sync_to_thread=True)
    def rollback(
        self,
        request: Request,
        tenant: str,
        project: str,
        data: Form,
        deployments: DeploymentService,
    ) -> Redirect | Template:
        reason = str(data.get("reason") or "").strip()
        wanted = str(data.get("to_version") or "").strip()
        values = {"reason": reason, "to_version": wanted}
        try:
            if not reason:
                raise BadRequest(
                    "say why you roll back: the reason goes into the audit trail",
                    code="reason_required",
                )
            if wanted and not wanted.isdigit():
                raise BadRequest("to_version must be a version number", code="invalid_rollback")
            done = deployments.rollback(project, int(wanted) if wanted else None, reason)
        except AppError as exc:
            return self._page(
                request, project, deployments, exc.status_code, {"rollback": exc.message}, values
            )
        flash(request, f"Rolled back: version {done.version} is now the active deployment.")
        return redirect(f"/t/{tenant}/projects/{project}/deployments")

    @post("/{version:int}/runtime", guards=[page_scope("deploy")], sync_to_thread=True)
    def runtime(
        self,
        request: Request,
        tenant: str,
        project: str,
        version: Version,
        data: Form,
        deployments: DeploymentService,
    ) -> Redirect | Template:
        values = {name: str(data.get(name) or "") for name in ("kind", *RUNTIME_FIELDS)}
        values["version"] = str(version)
        try:
            done = deployments.set_runtime(project, version, runtime_from_form(data))
        except AppError as exc:
            return self._page(
                request, project, deployments, exc.status_code, {"runtime": exc.message}, values
            )
        flash(
            request,
            f"Version {version} is served by {done.runtime.get('kind', 'transformers')} "
            "from its next request on.",
        )
        return redirect(f"/t/{tenant}/projects/{project}/deployments")
