"""Tenants: creation returns the tenant's first API key (shown once)."""

from __future__ import annotations

import hmac

from litestar import Controller, Request, post

from api import schemas, views
from api.auth import bearer_token
from api.errors import BadRequest, Conflict, Forbidden
from resources.database import Database
from resources.object_store import validate_slug
from resources.repository import TenantScope, create_tenant, tenant_by_slug
from resources.settings import get_settings


class TenantController(Controller):
    path = "/v1/tenants"
    tags = ["auth"]

    @post("/", operation_id="createTenant", sync_to_thread=True, status_code=201)
    def create(
        self, request: Request, data: schemas.TenantCreate, db: Database
    ) -> schemas.TenantCreated:
        """Create a tenant and its first API key (needs the admin token when one is configured)."""
        admin = get_settings().admin_token
        if admin and not hmac.compare_digest(bearer_token(request) or "", admin):
            raise Forbidden(
                "creating a tenant needs the admin token (PRIVATUNE_ADMIN_TOKEN)",
                code="admin_required",
            )
        try:
            slug = validate_slug(data.slug, "tenant")
        except ValueError as exc:
            raise BadRequest(str(exc), code="invalid_slug") from exc
        with db.session() as session:
            if tenant_by_slug(session, slug) is not None:
                raise Conflict(
                    f"tenant {slug!r} already exists; pick another slug", code="tenant_exists"
                )
            tenant, key = create_tenant(session, slug, data.name or slug)
            TenantScope(session, tenant.id).audit("admin", "tenant.created", slug)
            return schemas.TenantCreated(tenant=views.tenant(tenant), api_key=key)
