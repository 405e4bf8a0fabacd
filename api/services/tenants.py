"""Tenants: created by an operator (or by anyone, where the installation enables open sign-up),
listed, suspended and resumed by operators, moved between plans. Creation returns the tenant's
first API key (owner role, every scope), shown once, as it always has."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api import schemas, views
from api.errors import AppError, BadRequest, Conflict, NotFound
from api.security import Principal
from api.services.accounts import AccountService, SessionGrant, signed_in_session
from api.services.members import MemberService
from api.services.plans import get_plan
from resources import audit
from resources.database import Database
from resources.object_store import validate_slug
from resources.repository import TenantScope, create_tenant, tenant_by_slug
from resources.tables import Document, Membership, Project, Tenant, utcnow


@dataclass
class Created:
    tenant: schemas.Tenant
    api_key: str
    invitation: Any = None  # the first owner's invitation, when an operator named one
    grant: SessionGrant | None = None  # sign-up: the new owner is signed in
    invitation_error: str | None = None


def slug_or_400(slug: str) -> str:
    try:
        return validate_slug(slug, "tenant")
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_slug") from exc


class TenantService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _new(self, session: Session, slug: str, name: str | None, plan: str) -> tuple[Tenant, str]:
        slug = slug_or_400(slug)
        get_plan(session, plan)
        if tenant_by_slug(session, slug) is not None:
            raise Conflict(
                f"tenant {slug!r} already exists; pick another slug", code="tenant_exists"
            )
        return create_tenant(session, slug, (name or slug).strip()[:200] or slug, plan)

    def create(
        self,
        principal: Principal | None,
        slug: str,
        name: str | None,
        plan: str | None = None,
        owner_email: str | None = None,
    ) -> Created:
        """By an operator (any plan; optionally inviting the first owner by e-mail) or, with open
        sign-up, by anyone (the free plan unless the installation says otherwise; a signed-in
        person becomes its owner)."""
        operator = principal is not None and principal.is_operator
        if plan is not None and not operator:
            raise BadRequest("only an operator chooses the plan", code="invalid_request")
        with self.db.session() as session:
            tenant, key = self._new(session, slug, name, plan or "standard")
            actor = principal.actor if principal else "anonymous (open sign-up)"
            audit.append(
                session, tenant.id, actor, "tenant.created", tenant.slug, {"plan": tenant.plan}
            )
            # With open sign-up a signed-in person founds the tenant and owns it; an operator
            # creates it for someone else (the owner it invites).
            if (
                principal is not None
                and principal.kind == "user"
                and principal.user_id
                and not operator
            ):
                session.add(
                    Membership(
                        tenant_id=tenant.id,
                        user_id=principal.user_id,
                        role="owner",
                        created_by=actor,
                    )
                )
                audit.append(
                    session,
                    tenant.id,
                    actor,
                    "member.joined",
                    principal.email or "",
                    {"role": "owner"},
                )
            view = views.tenant(tenant)
            tenant_id = tenant.id
        invitation, invitation_error = None, None
        if owner_email:
            inviter = Principal(
                kind="operator",
                tenant_id=tenant_id,
                tenant_slug=view.slug,
                role="owner",
                is_operator=True,
            )
            try:
                invitation = MemberService(self.db, inviter).invite(owner_email, "owner")
            except AppError as exc:
                # The tenant stands and its key is shown once: say what to redo, do not fail.
                invitation_error = f"{exc.message} (invite the owner again: POST /v1/members/invitations with this key)"
        return Created(view, key, invitation, invitation_error=invitation_error)

    def sign_up(
        self, slug: str, name: str | None, email: str, password: str, display_name: str | None
    ) -> Created:
        """Open sign-up: a new person and their tenant, with them as its owner, signed in."""
        with self.db.session() as session:
            user = AccountService.create_user(session, email, display_name, password)
            tenant, key = self._new(session, slug, name, "free")
            actor = f"user:{user.email}"
            session.add(
                Membership(tenant_id=tenant.id, user_id=user.id, role="owner", created_by=actor)
            )
            audit.append(session, None, actor, "user.signed_up", user.email)
            audit.append(session, tenant.id, actor, "tenant.created", tenant.slug, {"plan": "free"})
            audit.append(session, tenant.id, actor, "member.joined", user.email, {"role": "owner"})
            user.last_sign_in_at = utcnow()
            session.flush()
            return Created(
                views.tenant(tenant), key, grant=SessionGrant(signed_in_session(user, tenant.slug))
            )

    # --- operator plane ------------------------------------------------------------------
    def list(self) -> list[schemas.TenantSummary]:
        with self.db.session() as session:
            counts = {
                name: dict(session.execute(query).all())
                for name, query in (
                    (
                        "projects",
                        select(Project.tenant_id, func.count()).group_by(Project.tenant_id),
                    ),
                    (
                        "documents",
                        select(Document.tenant_id, func.count()).group_by(Document.tenant_id),
                    ),
                    (
                        "members",
                        select(Membership.tenant_id, func.count()).group_by(Membership.tenant_id),
                    ),
                )
            }
            return [
                self._summary(t, counts)
                for t in session.scalars(select(Tenant).order_by(Tenant.slug))
            ]

    @staticmethod
    def _summary(t: Tenant, counts: dict[str, dict[str, int]]) -> schemas.TenantSummary:
        return schemas.TenantSummary(
            id=t.id,
            slug=t.slug,
            name=t.name,
            plan=t.plan,
            status=t.status,
            suspended_at=t.suspended_at,
            suspended_reason=t.suspended_reason,
            created_at=t.created_at,
            projects=counts["projects"].get(t.id, 0),
            documents=counts["documents"].get(t.id, 0),
            members=counts["members"].get(t.id, 0),
        )

    def _tenant(self, session: Session, slug: str) -> Tenant:
        tenant = tenant_by_slug(session, slug)
        if tenant is None:
            raise NotFound(f"no tenant {slug!r}", code="tenant_not_found")
        return tenant

    def get(self, slug: str) -> schemas.TenantSummary:
        with self.db.session() as session:
            tenant = self._tenant(session, slug)
            scope = TenantScope(session, tenant.id)
            counts = {
                "projects": {tenant.id: len(scope.projects())},
                "documents": {
                    tenant.id: int(
                        session.scalar(
                            select(func.count())
                            .select_from(Document)
                            .where(Document.tenant_id == tenant.id)
                        )
                        or 0
                    )
                },
                "members": {tenant.id: len(scope.memberships())},
            }
            return self._summary(tenant, counts)

    def suspend(self, slug: str, reason: str, actor: str) -> schemas.TenantSummary:
        reason = " ".join(reason.split())
        if not 1 <= len(reason) <= 1000:
            raise BadRequest(
                "give the reason for the suspension (1 to 1000 characters): the tenant's "
                "people see it",
                code="invalid_request",
            )
        with self.db.session() as session:
            tenant = self._tenant(session, slug)
            if tenant.status == "suspended":
                raise Conflict(f"tenant {slug} is already suspended", code="tenant_suspended")
            tenant.status, tenant.suspended_at, tenant.suspended_reason = (
                "suspended",
                utcnow(),
                reason,
            )
            audit.append(session, tenant.id, actor, "tenant.suspended", slug, {"reason": reason})
        return self.get(slug)

    def resume(self, slug: str, actor: str) -> schemas.TenantSummary:
        with self.db.session() as session:
            tenant = self._tenant(session, slug)
            if tenant.status != "suspended":
                raise Conflict(f"tenant {slug} is not suspended", code="tenant_not_suspended")
            tenant.status, tenant.suspended_at, tenant.suspended_reason = "active", None, None
            audit.append(session, tenant.id, actor, "tenant.resumed", slug)
        return self.get(slug)

    def change_plan(self, slug: str, plan_id: str, actor: str) -> schemas.TenantSummary:
        with self.db.session() as session:
            tenant = self._tenant(session, slug)
            get_plan(session, plan_id)
            previous = tenant.plan
            tenant.plan = plan_id
            audit.append(
                session,
                tenant.id,
                actor,
                "tenant.plan_changed",
                slug,
                {"from": previous, "to": plan_id},
            )
        return self.get(slug)
