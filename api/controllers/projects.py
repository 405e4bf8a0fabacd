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
    for name in (
        "near_dup_threshold",
        "quality_threshold",
        "auto_accept_threshold",
        "review_sample_rate",
    ):
        if values.get(name) is not None and not 0.0 <= values[name] <= 1.0:
            raise BadRequest(f"settings.{name} must be between 0 and 1", code="invalid_settings")
    _validate_dataset_settings(values)
    _validate_serving_settings(values)
    _validate_pii_settings(values)
    return values


def _validate_pii_settings(values: dict) -> None:
    """Recognisers, allow-list and entity types, checked without loading Presidio."""
    from assets.dataset.pii_review import RESIDUAL_MODES
    from assets.pii.recognizers import CustomRecognizer, validate_allow_terms, validate_entities

    custom = []
    for recognizer in values.get("pii_recognizers") or []:
        try:
            custom.append(CustomRecognizer.from_dict(recognizer))
        except (ValueError, TypeError) as exc:
            raise BadRequest(f"settings.pii_recognizers: {exc}", code="invalid_settings") from exc
    try:
        validate_allow_terms(values.get("pii_allow_terms"), "settings.pii_allow_terms")
        validate_entities(values.get("pii_entities"), custom, "settings.pii_entities")
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_settings") from exc
    if values.get("pii_residual") not in (None, *RESIDUAL_MODES):
        raise _invalid(f"pii_residual must be one of {', '.join(RESIDUAL_MODES)}")


def _invalid(message: str) -> BadRequest:
    return BadRequest(f"settings.{message}", code="invalid_settings")


def _validate_dataset_settings(values: dict) -> None:
    """The dataset builder's settings (see docs/configuration.md)."""
    if values.get("refusal_share") is not None and not 0.0 <= values["refusal_share"] <= 0.5:
        raise _invalid("refusal_share must be between 0 and 0.5")
    for name in ("refusal_text", "escalation_text", "system_prompt"):
        if values.get(name) is not None and not 1 <= len(values[name].strip()) <= 2000:
            raise _invalid(f"{name} must be 1 to 2000 characters")
    generators = values.get("generators")
    if generators is not None and (
        not generators or not set(generators) <= {"deterministic", "model"}
    ):
        raise _invalid("generators must be a non-empty list of deterministic and/or model")
    chunk = values.get("chunk_tokens")
    if chunk is not None and not 32 <= chunk <= 4096:
        raise _invalid("chunk_tokens must be between 32 and 4096")
    overlap = values.get("chunk_overlap_tokens")
    if overlap is not None and not 0 <= overlap <= (chunk or 256) // 2:
        raise _invalid("chunk_overlap_tokens must be between 0 and half of chunk_tokens")
    if values.get("review_policy") not in (None, "auto", "wait"):
        raise _invalid("review_policy must be auto or wait")
    model = values.get("generator_model")
    if model:
        from assets.dataset.model_generator import PROVIDERS

        if model.get("provider", "local") not in PROVIDERS:
            raise _invalid(f"generator_model.provider must be one of {', '.join(PROVIDERS)}")
        if model.get("provider") == "openai" and not (model.get("base_url") and model.get("model")):
            raise _invalid("generator_model: provider openai needs base_url and model")
        if model.get("provider") == "ollama" and not model.get("model"):
            raise _invalid("generator_model: provider ollama needs model")
        base_url = model.get("base_url")
        if base_url and not base_url.startswith(("http://", "https://")):
            raise _invalid("generator_model.base_url must be an http(s) URL")
        env = model.get("api_key_env")
        if env and not env.replace("_", "").isalnum():
            raise _invalid("generator_model.api_key_env must be an environment variable name")
        if model.get("max_chunks") is not None and not 1 <= model["max_chunks"] <= 100_000:
            raise _invalid("generator_model.max_chunks must be between 1 and 100000")
        if model.get("max_new_tokens") is not None and not 8 <= model["max_new_tokens"] <= 4096:
            raise _invalid("generator_model.max_new_tokens must be between 8 and 4096")


def _validate_serving_settings(values: dict) -> None:
    """The promotion gate, the retrieval confidence threshold and the serving runtime."""
    from assets.evaluation.report import DEFAULT_MARGINS
    from resources.runtimes import RUNTIME_KINDS

    promotion = values.get("promotion") or {}
    for metric, margin in (promotion.get("margins") or {}).items():
        if metric not in DEFAULT_MARGINS:
            raise _invalid(
                f"promotion.margins: unknown metric {metric!r}; one of {', '.join(DEFAULT_MARGINS)}"
            )
        if not 0.0 <= margin <= 1.0:
            raise _invalid(f"promotion.margins.{metric} must be between 0 and 1")
    budget = promotion.get("latency_budget_p95_s")
    if budget is not None and budget <= 0:
        raise _invalid("promotion.latency_budget_p95_s must be positive")
    threshold = values.get("retrieval_min_confidence")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise _invalid("retrieval_min_confidence must be between 0 and 1")
    runtime = values.get("runtime")
    if runtime:
        kind = runtime.get("kind", "transformers")
        if kind not in RUNTIME_KINDS:
            raise _invalid(f"runtime.kind must be one of {', '.join(RUNTIME_KINDS)}")
        base_url = runtime.get("base_url")
        if kind in ("ollama", "openai") and not base_url:
            raise _invalid(f"runtime: kind {kind} needs base_url (the upstream's /v1 address)")
        if base_url and not base_url.startswith(("http://", "https://")):
            raise _invalid("runtime.base_url must be an http(s) URL")
        env = runtime.get("api_key_env")
        if env and not env.replace("_", "").isalnum():
            raise _invalid("runtime.api_key_env must be an environment variable name")
        if runtime.get("max_batch") is not None and not 1 <= runtime["max_batch"] <= 64:
            raise _invalid("runtime.max_batch must be between 1 and 64")


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
