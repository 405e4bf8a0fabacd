"""The Litestar application: `create_app()`."""

from __future__ import annotations

from functools import partial

from litestar import Litestar, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar_htmx import HTMXPlugin

from api.authn import make_resolver
from api.controllers.audit import AuditController, PlatformAuditController
from api.controllers.auth import AuthController, InvitationController
from api.controllers.datasets import DatasetController, ReviewController
from api.controllers.deployments import DeploymentController, EvaluationController
from api.controllers.documents import DocumentController
from api.controllers.evaluation_sets import EvaluationSetController
from api.controllers.inference import InferenceController
from api.controllers.members import KeyController, MemberController, UsageController
from api.controllers.metrics import MetricsController
from api.controllers.projects import ProjectController
from api.controllers.runs import RunController
from api.controllers.tenants import (
    AdminBaseModelController,
    AdminPlanController,
    AdminTenantController,
    AdminUserController,
    TenantController,
)
from api.controllers.training import BaseModelController, DataRightsController
from api.csrf import CookieCSRFMiddleware, csrf_config
from api.dependencies import DEPENDENCIES
from api.errors import AppError, app_error_handler, http_error_handler, internal_error_handler
from api.observability import JsonLogging, observe_requests
from api.openapi import StructSchemaPlugin, document_operations, openapi_config
from api.options import answer_options_with_every_method
from api.portal import portal_router, static_router, template_config
from api.requests import ApiRequest
from api.schemas import Health
from api.security import assert_every_route_guarded, public
from api.services.inference import InferenceService
from api.sessions import DatabaseSessionStore, session_config
from resources import metrics, secret_box
from resources.database import Database
from resources.model_registry import ensure_registry
from resources.object_store import ObjectStore, build_object_store
from resources.orchestrator import DagsterOrchestrator
from resources.settings import get_settings


@get("/health", operation_id="health", tags=["admin"], guards=[public])
async def health() -> Health:
    """Liveness."""
    return Health(status="ok")


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
    csrf_secret = secret_box.derive("csrf").hex()
    metrics.watch_database(db)  # runs, quarantines and stage durations, read when scraped

    def on_startup() -> None:
        if settings.auto_migrate:
            db.migrate()
        with db.session() as session:
            ensure_registry(session)

    # Each handler's guard says who may call it (api/security.py); the tenant it acts on is
    # the caller's (an API key's tenant, or the tenant a signed-in person chose).
    app = Litestar(
        route_handlers=[
            health,
            AuthController,
            InvitationController,
            TenantController,
            MemberController,
            KeyController,
            UsageController,
            AuditController,
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
            AdminTenantController,
            AdminPlanController,
            AdminUserController,
            AdminBaseModelController,
            PlatformAuditController,
            MetricsController,
            # The web portal: pages at /, its own scripts and styles at /static.
            portal_router(),
            static_router(),
        ],
        dependencies={
            "db": Provide(lambda: db, use_cache=True, sync_to_thread=False),
            "store": Provide(lambda: object_store, use_cache=True, sync_to_thread=False),
            "orchestrator": Provide(lambda: dagster, use_cache=True, sync_to_thread=False),
            "inference": Provide(lambda: inference, use_cache=True, sync_to_thread=False),
            **DEPENDENCIES,
        },
        state=State(
            {"principal_resolver": make_resolver(db), "csrf_secret": csrf_secret, "db": db}
        ),
        template_config=template_config(),
        stores={"sessions": DatabaseSessionStore(db)},
        middleware=[
            session_config(settings.session_max_age_s, settings.cookies_secure).middleware,
            DefineMiddleware(
                CookieCSRFMiddleware, config=csrf_config(csrf_secret, settings.cookies_secure)
            ),
        ],
        exception_handlers={
            AppError: app_error_handler,
            HTTPException: http_error_handler,
            Exception: internal_error_handler,
        },
        on_startup=[on_startup, partial(metrics.serve_metrics_port, settings.metrics_port)],
        logging_config=JsonLogging(),  # JSON lines on stderr (resources/logs.py)
        # Every answer of every operation is documented (api/openapi.py), errors included.
        openapi_config=openapi_config(),
        plugins=[StructSchemaPlugin(), HTMXPlugin()],
        request_class=ApiRequest,
        # A request may carry several files; each is also checked against the per-file limit.
        request_max_body_size=settings.max_upload_bytes * 20 + (1 << 20),
    )
    assert_every_route_guarded(_handlers(app))
    document_operations(app)
    answer_options_with_every_method(app)
    # Outermost: request id, access log and HTTP metrics for every response, 404s included.
    return observe_requests(app)


def _handlers(app: Litestar) -> list[BaseRouteHandler]:
    """Every route handler of the app but those Litestar adds itself (the OpenAPI pages, the
    OPTIONS answer of each path)."""
    handlers: list[BaseRouteHandler] = []
    for route in app.routes:
        if route.path.startswith("/schema"):
            continue
        handlers.extend(
            h
            for h in getattr(route, "route_handlers", [])
            if set(getattr(h, "http_methods", ())) != {"OPTIONS"}
        )
    return handlers
