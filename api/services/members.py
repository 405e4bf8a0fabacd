"""Members of a tenant and invitations to join it. Owners and admins manage members; only an
owner makes or unmakes owners; a tenant always keeps at least one owner. Every change audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api import schemas
from api.errors import BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable
from api.security import ROLES, Principal, at_least
from api.services.accounts import (
    AccountService,
    InvalidCredentials,
    SessionGrant,
    email_or_400,
    signed_in_session,
)
from api.services.base import TenantService
from resources import audit, mailer, passwords, secret_box
from resources.database import Database
from resources.repository import TenantScope
from resources.settings import get_settings
from resources.tables import Invitation, Membership, Tenant, User, utcnow

INVITATION_TTL = timedelta(days=7)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def role_or_400(role: str) -> str:
    if role not in ROLES:
        raise BadRequest(f"role must be one of {', '.join(ROLES)}", code="invalid_role")
    return role


def invitation_state(row: Invitation, now: datetime | None = None) -> str:
    if row.accepted_at is not None:
        return "accepted"
    if row.revoked_at is not None:
        return "revoked"
    if _aware(row.expires_at) <= (now or utcnow()):
        return "expired"
    return "pending"


def invitation_view(row: Invitation, **extra: Any) -> schemas.Invitation:
    return schemas.Invitation(
        id=row.id,
        email=row.email,
        role=row.role,
        invited_by=row.invited_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        state=invitation_state(row),
        **extra,
    )


class MemberService(TenantService):
    def members(self) -> list[schemas.Member]:
        with self.scope() as scope:
            return [self._view(m, u) for m, u in scope.memberships()]

    def _may_grant(self, role: str) -> None:
        if role == "owner" and not at_least(self.principal.role, "owner"):
            raise Forbidden("only an owner can make someone an owner", code="insufficient_role")
        if not at_least(self.principal.role, role):
            raise Forbidden(
                f"you cannot grant the role {role}, which is above your own "
                f"({self.principal.role})",
                code="insufficient_role",
            )

    def grantable_roles(self) -> list[str]:
        """The roles the caller may give (invite with, change to): never above their own."""
        return [role for role in ROLES if at_least(self.principal.role, role)]

    def may_manage(self, member_role: str) -> bool:
        """Whether the caller may change or remove a member with this role (owners: only an
        owner; the last-owner rule is the service's, checked when it is tried)."""
        if not at_least(self.principal.role, "admin"):
            return False
        return at_least(self.principal.role, member_role)

    def invite(self, email: str, role: str) -> schemas.Invitation:
        """A single-use link (7 days), mailed; without a mail server the link is logged and
        returned to the admin who invited (they pass it on). Re-inviting replaces a pending one."""
        normalized = email_or_400(email)
        self._may_grant(role_or_400(role))
        plain, hashed = secret_box.new_token()
        with self.scope() as scope:
            tenant = scope.session.get(Tenant, self.tenant_id)
            assert tenant is not None
            existing = scope.session.scalar(select(User).where(User.email == normalized))
            if existing is not None and scope.membership(existing.id) is not None:
                raise Conflict(
                    f"{normalized} is already a member of {tenant.slug}; change their role instead",
                    code="already_member",
                )
            for old in scope.invitations():
                if old.email == normalized:
                    old.revoked_at = utcnow()
            row = Invitation(
                tenant_id=self.tenant_id,
                email=normalized,
                role=role,
                token_hash=hashed,
                invited_by=self.actor,
                expires_at=utcnow() + INVITATION_TTL,
            )
            scope.session.add(row)
            scope.session.flush()
            link = f"{get_settings().base_url}/invitations/accept?token={plain}"
            try:
                delivery = mailer.send_mail(
                    normalized,
                    f"You are invited to {tenant.name} on privatune",
                    f"{self.actor.partition(':')[2] or self.actor} invited you to join "
                    f"{tenant.name} ({tenant.slug}) on privatune as {role}. Open this link "
                    f"within {INVITATION_TTL.days} days to accept:",
                    link=link,
                )
            except mailer.MailError as exc:
                # Nothing is kept: the invitation would be a link nobody received.
                raise ServiceUnavailable(
                    f"the invitation could not be mailed: {exc}", code="mail_unavailable"
                ) from exc
            scope.audit(
                self.actor,
                "member.invited",
                normalized,
                {"role": role, "invitation_id": row.id, "mailed": delivery.sent},
            )
            return invitation_view(row, sent=delivery.sent, accept_url=delivery.link)

    def invitations(self) -> list[schemas.Invitation]:
        with self.scope() as scope:
            return [invitation_view(r) for r in scope.invitations(pending_only=False)[:200]]

    def revoke_invitation(self, invitation_id: str) -> None:
        with self.scope() as scope:
            row = scope.invitation(invitation_id)
            if row is None:
                raise NotFound(
                    f"no invitation {invitation_id} in this tenant", code="invitation_not_found"
                )
            if invitation_state(row) != "pending":
                raise Conflict(
                    f"the invitation is {invitation_state(row)}; only pending ones can be revoked",
                    code="invitation_not_pending",
                )
            row.revoked_at = utcnow()
            scope.audit(self.actor, "member.invitation_revoked", row.email, {"role": row.role})

    def _membership(self, scope: TenantScope, user_id: str) -> tuple[Membership, User]:
        membership = scope.membership(user_id)
        user = scope.session.get(User, user_id) if membership else None
        if membership is None or user is None:
            raise NotFound(f"no member {user_id} in this tenant", code="member_not_found")
        return membership, user

    def change_role(self, user_id: str, role: str) -> schemas.Member:
        role_or_400(role)
        with self.scope() as scope:
            scope.lock_tenant()  # the owner count below must not change under us
            membership, user = self._membership(scope, user_id)
            if membership.role == role:
                return self._view(membership, user)
            self._may_grant(role)
            if membership.role == "owner":
                self._may_grant("owner")
                if scope.owner_count() <= 1:
                    raise Conflict(
                        f"{user.email} is the last owner; make someone else owner first",
                        code="last_owner",
                    )
            elif not at_least(self.principal.role, membership.role):
                raise Forbidden(
                    f"you cannot change the role of a member above you ({membership.role})",
                    code="insufficient_role",
                )
            previous = membership.role
            membership.role = role
            scope.audit(
                self.actor, "member.role_changed", user.email, {"from": previous, "to": role}
            )
            return self._view(membership, user)

    def remove(self, user_id: str) -> None:
        with self.scope() as scope:
            scope.lock_tenant()
            membership, user = self._membership(scope, user_id)
            leaving = user_id == self.principal.user_id
            if membership.role == "owner":
                if not leaving:
                    self._may_grant("owner")
                if scope.owner_count() <= 1:
                    raise Conflict(
                        f"{user.email} is the last owner; make someone else owner first",
                        code="last_owner",
                    )
            elif not leaving and not at_least(self.principal.role, membership.role):
                raise Forbidden(
                    f"you cannot remove a member above you ({membership.role})",
                    code="insufficient_role",
                )
            scope.session.delete(membership)
            scope.audit(
                self.actor,
                "member.left" if leaving else "member.removed",
                user.email,
                {"role": membership.role},
            )

    @staticmethod
    def _view(m: Membership, u: User) -> schemas.Member:
        return schemas.Member(
            user_id=u.id,
            email=u.email,
            display_name=u.display_name,
            role=m.role,
            joined_at=m.created_at,
            second_factor=u.totp_enabled_at is not None,
            last_sign_in_at=u.last_sign_in_at,
        )


class InvitationService:
    """Accepting an invitation: public (the token is the credential)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _invitation(self, session: Session, token: str, lock: bool = False) -> Invitation:
        query = select(Invitation).where(Invitation.token_hash == secret_box.token_hash(token))
        row = session.scalar(query.with_for_update() if lock else query)
        if row is None or invitation_state(row) != "pending":
            raise BadRequest(
                "this invitation link is invalid, used, revoked or expired; ask the person who "
                "invited you for a new one",
                code="invalid_token",
            )
        return row

    def preview(self, token: str) -> dict[str, Any]:
        """What the invitation is for, so the page can say it before anyone signs up."""
        with self.db.session() as session:
            row = self._invitation(session, token)
            tenant = session.get(Tenant, row.tenant_id)
            assert tenant is not None
            has_account = session.scalar(select(User.id).where(User.email == row.email)) is not None
            return {
                "tenant": tenant.slug,
                "tenant_name": tenant.name,
                "email": row.email,
                "role": row.role,
                "expires_at": row.expires_at,
                "has_account": has_account,
            }

    def accept(
        self,
        token: str,
        principal: Principal | None,
        password: str | None,
        display_name: str | None,
    ) -> SessionGrant:
        """A new person chooses a password (policy applies); an existing one proves who they
        are with their password or their session. Either way they join with the invited role
        and are signed in."""
        with self.db.session() as session:
            row = self._invitation(session, token, lock=True)
            user = session.scalar(select(User).where(User.email == row.email))
            if user is None:
                if not password:
                    raise BadRequest(
                        "choose a password to create your account", code="password_required"
                    )
                user = AccountService.create_user(session, row.email, display_name, password)
                audit.append(session, None, f"user:{user.email}", "user.created", user.email)
            elif not (principal is not None and principal.user_id == user.id):
                if user.totp_enabled_at is not None:
                    raise InvalidCredentials(
                        f"{row.email} already has an account with a second factor: sign in "
                        "first, then open the invitation again",
                        code="sign_in_required",
                    )
                ok, _ = passwords.verify_password(password or "", user.password_hash or "")
                if not ok or user.disabled_at is not None:
                    raise InvalidCredentials(
                        f"{row.email} already has an account: sign in first, or give its "
                        "password to accept",
                        code="invalid_credentials",
                    )
            tenant = session.get(Tenant, row.tenant_id)
            assert tenant is not None
            if session.scalar(
                select(Membership.id).where(
                    Membership.tenant_id == tenant.id, Membership.user_id == user.id
                )
            ):
                raise Conflict(f"you are already a member of {tenant.slug}", code="already_member")
            session.add(
                Membership(
                    tenant_id=tenant.id, user_id=user.id, role=row.role, created_by=row.invited_by
                )
            )
            row.accepted_at = utcnow()
            row.accepted_user_id = user.id
            user.last_sign_in_at = row.accepted_at  # accepting signs them in
            session.flush()
            audit.append(
                session,
                tenant.id,
                f"user:{user.email}",
                "member.joined",
                user.email,
                {"role": row.role, "invited_by": row.invited_by},
            )
            return SessionGrant(signed_in_session(user, tenant.slug))
