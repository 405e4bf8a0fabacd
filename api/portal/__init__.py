"""The web portal: server-rendered pages (Jinja2 templates in portal_ui/templates) enhanced with
HTMX and server-sent events, every script and style served by the app (portal_ui/static). Page
handlers call the same services as the JSON API; guards send a visitor to the sign-in page,
and another tenant's pages answer 404."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Router
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.exceptions import HTTPException
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from api.errors import AppError
from api.portal.auth import PortalAuthController
from api.portal.chat import PortalChatController
from api.portal.datasets import PortalDatasetController
from api.portal.deployments import PortalDeploymentController
from api.portal.documents import PortalDocumentController
from api.portal.evaluations import PortalEvaluationController
from api.portal.operator import PortalOperatorController
from api.portal.pages import page_error_handler
from api.portal.projects import PortalProjectController
from api.portal.runs import PortalRunController
from api.portal.settings import PortalSettingsController
from api.portal.tenant import PortalTenantController
from api.security import public

PORTAL_DIR = Path(__file__).resolve().parent.parent.parent / "portal_ui"
TEMPLATES = PORTAL_DIR / "templates"
STATIC = PORTAL_DIR / "static"

CONTROLLERS: list[Any] = [PortalAuthController, PortalProjectController]
CONTROLLERS += [PortalDocumentController, PortalDatasetController]
CONTROLLERS += [PortalSettingsController, PortalTenantController, PortalOperatorController]
CONTROLLERS += [PortalRunController, PortalEvaluationController]
CONTROLLERS += [PortalDeploymentController, PortalChatController]


def template_config() -> TemplateConfig:
    environment = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["filesize"] = _filesize
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))


def _filesize(value: int | None) -> str:
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)


def portal_router() -> Router:
    """Every page, with errors shown as pages (sign in, not allowed, not found)."""
    return Router(
        path="/",
        route_handlers=CONTROLLERS,
        exception_handlers={
            AppError: page_error_handler,
            HTTPException: page_error_handler,
            Exception: page_error_handler,
        },
        include_in_schema=False,
    )


def static_router() -> Router:
    return create_static_files_router(
        path="/static", directories=[STATIC], guards=[public], include_in_schema=False
    )
