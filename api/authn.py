"""Authentication: turn a request's credentials into a `Principal` (api/security.py).

Credentials, in order: `Authorization: Bearer <token>` or `X-API-Key: <token>` (the operator token
or a tenant's API key), then the portal session cookie. A user acts in one tenant at a time: the
`X-Tenant` header, or the tenant chosen in the session."""

from __future__ import annotations

import hmac
from typing import Any

import anyio
from litestar.connection import ASGIConnection
from litestar.types import Empty
from sqlalchemy import select

from api.errors import Forbidden, Unauthorized
from api.security import ROLE_SCOPES, Principal, role_rank
from resources import request_context
from resources.database import Database
from resources.repository import authenticate
from resources.settings import get_settings
from resources.tables import Membership, Tenant, User

TENANT_HEADER = "x-tenant"


def bearer_token(connection: ASGIConnection) -> str | None:
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return connection.headers.get("x-api-key")


def is_operator_token(token: str) -> bool:
    admin = get_settings().admin_token
    return bool(admin) and hmac.compare_digest(token.encode(), admin.encode())


def _suspended(tenant: Tenant) -> Forbidden:
    return Forbidden(
        f"tenant {tenant.slug} is suspended ({tenant.suspended_reason or 'by an operator'}); "
        "contact the installation's operator",
        code="tenant_suspended",
    )


def key_principal(db: Database, token: str) -> Principal:
    """The principal an API key stands for; 401 when it is unknown, revoked or expired."""
    with db.session() as session:
        found = authenticate(session, token)
        if found is None:
            raise Unauthorized(
                "the API key is invalid, expired or revoked; ask an admin of your tenant for a "
                "new one",
                code="invalid_api_key",
            )
        tenant, key = found
        if tenant.status != "active":
            raise _suspended(tenant)
        role = key.role
        if key.created_by_user_id is not None:
            # A key never outlives or outranks the person who made it.
            row = session.execute(
                select(Membership.role, User.disabled_at)
                .join(User, User.id == Membership.user_id)
                .where(
                    Membership.tenant_id == tenant.id,
                    Membership.user_id == key.created_by_user_id,
                )
            ).first()
            if row is None or row[1] is not None:
                raise Unauthorized(
                    "the API key's creator is no longer a member of the tenant, so the key no "
                    "longer works; ask an admin for a new one",
                    code="invalid_api_key",
                )
            if role_rank(row[0]) < role_rank(role):
                role = row[0]
        scopes = frozenset(key.scopes or []) & ROLE_SCOPES.get(role, frozenset())
        return Principal(
            kind="api_key",
            tenant_id=tenant.id,
            tenant_slug=tenant.slug,
            role=role,
            scopes=scopes,
            key_id=key.id,
            key_prefix=key.prefix,
        )


def session_principal(
    db: Database, data: dict[str, Any], tenant_slug: str | None, session_id: str | None
) -> Principal | None:
    """The signed-in user, acting in `tenant_slug` when given; None when the session ended
    (signed out elsewhere, password changed, user disabled)."""
    user_id = data.get("uid")
    if not user_id:
        return None
    with db.session() as session:
        user = session.get(User, user_id)
        if user is None or user.disabled_at is not None:
            return None
        if data.get("epoch") != user.session_epoch:
            return None
        base = Principal(
            kind="user",
            user_id=user.id,
            email=user.email,
            is_operator=user.is_operator,
            session_id=session_id,
        )
        if not tenant_slug:
            return base
        row = session.execute(
            select(Membership.role, Tenant)
            .join(Tenant, Tenant.id == Membership.tenant_id)
            .where(Membership.user_id == user.id, Tenant.slug == tenant_slug)
        ).first()
        if row is None:
            raise Forbidden(
                f"you are not a member of a tenant {tenant_slug!r}; GET /v1/auth/me lists yours",
                code="not_a_member",
            )
        role, tenant = row
        return Principal(
            kind="user",
            tenant_id=tenant.id,
            tenant_slug=tenant.slug,
            role=role,
            scopes=ROLE_SCOPES[role],
            user_id=user.id,
            email=user.email,
            is_operator=user.is_operator,
            session_id=session_id,
            # A person keeps their own account pages; the tenant's data stays out of reach.
            suspended=(tenant.suspended_reason or "by an operator")
            if tenant.status != "active"
            else None,
        )


def make_resolver(db: Database):  # type: ignore[no-untyped-def]
    async def resolve(connection: ASGIConnection) -> Principal | None:
        token = bearer_token(connection)
        principal: Principal | None
        if token:
            if is_operator_token(token):
                principal = Principal(kind="operator", is_operator=True)
            else:
                principal = await anyio.to_thread.run_sync(key_principal, db, token)
        else:
            data = connection.scope.get("session") or {}
            if not isinstance(data, dict) or not data.get("uid"):
                return None
            # A portal page names its tenant in the URL (/t/<tenant>/...); the JSON API takes
            # the X-Tenant header or the tenant chosen in the session.
            path_params = connection.scope.get("path_params") or {}
            tenant = (
                path_params.get("tenant")
                or connection.headers.get(TENANT_HEADER)
                or data.get("tenant")
            )
            session_id = connection.cookies.get("privatune_session")
            principal = await anyio.to_thread.run_sync(
                session_principal, db, data, tenant, session_id
            )
            if principal is None:
                connection.scope["session"] = Empty  # ended: the cookie is cleared on the way out
                return None
        request_context.update(tenant=principal.tenant_slug, actor=principal.actor)
        return principal

    return resolve
