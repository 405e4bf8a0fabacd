"""Deployments (versions of a project's model; one is active: activate, roll back, choose the
serving runtime) and evaluations (each candidate's promotion verdict, each nightly
re-evaluation)."""

from __future__ import annotations

from litestar import Controller, get, post, put
from litestar.response import Response

from api import schemas, views
from api.auth import Principal
from api.controllers.projects import _validate_serving_settings, get_project
from api.errors import BadRequest, Conflict, NotFound
from resources.database import Database
from resources.object_store import ObjectNotFound, ObjectStore, ProjectStore
from resources.repository import TenantScope
from resources.tables import Deployment, Project


def _deployment(scope: TenantScope, row: Project, version: int) -> Deployment:
    deployment = scope.deployment(row.id, version)
    if deployment is None:
        raise NotFound(
            f"project {row.slug} has no deployment version {version}; "
            f"list them with GET /v1/projects/{row.slug}/deployments",
            code="deployment_not_found",
        )
    return deployment


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

    @get("/{version:int}", operation_id="getDeployment", sync_to_thread=True)
    def detail(
        self, project: str, version: int, principal: Principal, db: Database
    ) -> schemas.Deployment:
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            return views.deployment(
                _deployment(scope, row, version), principal.tenant_slug, row.slug
            )

    @post(
        "/{version:int}/activate",
        operation_id="activateDeployment",
        sync_to_thread=True,
        status_code=200,
    )
    def activate(
        self, project: str, version: int, principal: Principal, db: Database
    ) -> schemas.Deployment:
        """Make this version the active one (any version, older or newer: audited)."""
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            deployment = _deployment(scope, row, version)
            previous = scope.active_deployment(row.id)
            scope.activate(deployment)
            scope.audit(
                principal.actor,
                "deployment.activated",
                f"{row.slug}@{version}",
                {"previous_version": previous.version if previous else None},
            )
            return views.deployment(deployment, principal.tenant_slug, row.slug)

    @post("/rollback", operation_id="rollbackDeployment", sync_to_thread=True, status_code=200)
    def rollback(
        self, project: str, data: schemas.Rollback, principal: Principal, db: Database
    ) -> schemas.Deployment:
        """Roll back to an earlier version: `to_version`, or the newest one older than the
        active version. Audited with the versions and the reason."""
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            active = scope.active_deployment(row.id)
            if active is None:
                raise Conflict(
                    f"project {row.slug} has no active deployment to roll back",
                    code="no_active_deployment",
                )
            if data.to_version is not None:
                target = _deployment(scope, row, data.to_version)
                if target.version >= active.version:
                    raise BadRequest(
                        f"to_version {data.to_version} is not older than the active version "
                        f"{active.version}; activate newer versions with "
                        f"POST .../deployments/{data.to_version}/activate",
                        code="invalid_rollback",
                    )
            else:
                older = [d for d in scope.deployments(row.id) if d.version < active.version]
                if not older:
                    raise Conflict(
                        f"version {active.version} is the project's first deployment: "
                        "there is nothing to roll back to",
                        code="no_earlier_deployment",
                    )
                target = older[0]
            scope.activate(target)
            scope.audit(
                principal.actor,
                "deployment.rolled_back",
                f"{row.slug}@{target.version}",
                {
                    "from_version": active.version,
                    "to_version": target.version,
                    "reason": data.reason,
                },
            )
            return views.deployment(target, principal.tenant_slug, row.slug)

    @put("/{version:int}/runtime", operation_id="setDeploymentRuntime", sync_to_thread=True)
    def set_runtime(
        self,
        project: str,
        version: int,
        data: schemas.ServingRuntime,
        principal: Principal,
        db: Database,
        store: ObjectStore,
    ) -> schemas.Deployment:
        """Serve this deployment with another runtime (transformers, llama_cpp, ollama, openai)
        from its next request on; audited."""
        import msgspec

        block = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}
        _validate_serving_settings({"runtime": block})
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            deployment = _deployment(scope, row, version)
            manifest = dict(deployment.manifest or {})
            if block.get("kind") == "llama_cpp" and not (manifest.get("gguf_lora") or {}).get(
                "key"
            ):
                reason = (manifest.get("gguf_lora") or {}).get("error") or "not exported"
                raise Conflict(
                    f"deployment v{version} has no GGUF LoRA export ({reason}); "
                    "llama_cpp cannot serve it",
                    code="runtime_unavailable",
                )
            from resources.runtimes import RuntimeSpec

            manifest["runtime"] = RuntimeSpec.from_manifest(block).describe()
            deployment.manifest = manifest
            if deployment.manifest_key:
                ProjectStore(store, principal.tenant_slug, row.slug).put_json(
                    deployment.manifest_key, manifest
                )
            scope.audit(
                principal.actor,
                "deployment.runtime_changed",
                f"{row.slug}@{version}",
                {"runtime": manifest["runtime"]},
            )
            return views.deployment(deployment, principal.tenant_slug, row.slug)


class EvaluationController(Controller):
    path = "/v1/projects/{project:str}/evaluations"
    tags = ["evaluations"]

    @get("/", operation_id="listEvaluations", sync_to_thread=True)
    def list(
        self, project: str, principal: Principal, db: Database, limit: int = 50
    ) -> list[schemas.Evaluation]:
        """Newest first: candidates (with the promotion gate's verdict) and scheduled
        re-evaluations of the active deployment (`passed: false` is a regression)."""
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            return [views.evaluation(e) for e in scope.evaluations(row.id, min(max(limit, 1), 500))]

    @get("/{evaluation_id:str}/report", operation_id="getEvaluationReport", sync_to_thread=True)
    def report(
        self,
        project: str,
        evaluation_id: str,
        principal: Principal,
        db: Database,
        store: ObjectStore,
        format: str = "json",
    ) -> Response:
        """The full report: `format=json` (per-question rows, failures first) or `html`."""
        if format not in ("json", "html"):
            raise BadRequest("format must be json or html", code="invalid_format")
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            evaluation = scope.evaluation(row.id, evaluation_id)
            if evaluation is None:
                raise NotFound(
                    f"evaluation {evaluation_id} not found in project {project}",
                    code="evaluation_not_found",
                )
            key = evaluation.report_key
            slug = row.slug
        if format == "html":
            key = key.removesuffix(".json") + ".html"
        try:
            data = ProjectStore(store, principal.tenant_slug, slug).get_bytes(key)
        except ObjectNotFound as exc:
            raise NotFound(
                f"report {key} is missing from the object store", code="report_missing"
            ) from exc
        return Response(
            data,
            media_type="text/html; charset=utf-8" if format == "html" else "application/json",
        )
