"""The Litestar application: `create_app()`."""

from __future__ import annotations

from litestar import Litestar, Router, get
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig

from api.auth import provide_principal
from api.controllers.datasets import DatasetController, ReviewController
from api.controllers.deployments import DeploymentController, EvaluationController
from api.controllers.documents import DocumentController
from api.controllers.evaluation_sets import EvaluationSetController
from api.controllers.inference import InferenceController
from api.controllers.projects import ProjectController
from api.controllers.runs import RunController
from api.controllers.tenants import TenantController
from api.controllers.training import (
    AdminBaseModelController,
    BaseModelController,
    DataRightsController,
)
from api.errors import AppError, app_error_handler, http_error_handler, internal_error_handler
from api.inference import InferenceService
from resources.database import Database
from resources.model_registry import ensure_registry
from resources.object_store import ObjectStore, build_object_store
from resources.orchestrator import DagsterOrchestrator
from resources.settings import get_settings


@get("/health", operation_id="health", tags=["admin"])
async def health() -> dict:
    return {"status": "ok"}


def create_app(
    database: Database | None = None,
    store: ObjectStore | None = None,
    orchestrator: DagsterOrchestrator | None = None,
) -> Litestar:
    settings = get_settings()
    db = database or Database()
    object_store = store or build_object_store(settings)
    dagster = orchestrator or DagsterOrchestrator()
    inference = InferenceService(db, object_store)

    def on_startup() -> None:
        if settings.auto_migrate:
            db.migrate()
        with db.session() as session:
            ensure_registry(session)

    # Everything under this router runs as the tenant whose API key came with the request.
    tenant_api = Router(
        path="/",
        route_handlers=[
            ProjectController,
            DocumentController,
            RunController,
            DatasetController,
            ReviewController,
            DeploymentController,
            EvaluationController,
            EvaluationSetController,
            InferenceController,
            DataRightsController,
            BaseModelController,
        ],
        dependencies={"principal": Provide(provide_principal, sync_to_thread=True)},
    )
    return Litestar(
        route_handlers=[health, TenantController, AdminBaseModelController, tenant_api],
        dependencies={
            "db": Provide(lambda: db, use_cache=True, sync_to_thread=False),
            "store": Provide(lambda: object_store, use_cache=True, sync_to_thread=False),
            "orchestrator": Provide(lambda: dagster, use_cache=True, sync_to_thread=False),
            "inference": Provide(lambda: inference, use_cache=True, sync_to_thread=False),
        },
        exception_handlers={
            AppError: app_error_handler,
            HTTPException: http_error_handler,
            Exception: internal_error_handler,
        },
        on_startup=[on_startup],
        openapi_config=OpenAPIConfig(title="privatune", version="0.1.0", path="/schema"),
        # A request may carry several files; each is also checked against the per-file limit.
        request_max_body_size=settings.max_upload_bytes * 20 + (1 << 20),
    )
