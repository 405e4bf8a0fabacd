"""People: sign-in (password, optional TOTP second factor, throttled), sign-out, password change
and reset, second-factor set-up, open sign-up, and the operator's user import with legacy hashes.

The service never touches the HTTP session itself: it returns the session data to keep
(`SessionGrant`), and the controller stores it. Account events go to the platform's audit chain
(a person may belong to several tenants); tenant events (joining one) to the tenant's."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api import schemas
from api.errors import AppError, BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from api.security import ROLES, Principal
from api.services import throttle
from api.services.password_policy import WeakPassword, check_password
from api.sessions import ROTATE_KEY, end_user_sessions
from resources import audit, mailer, passwords, secret_box, totp
from resources.database import Database
from resources.emails import InvalidEmail, normalize_email
from resources.settings import get_settings
from resources.tables import Membership, RecoveryCode, Tenant, User, UserToken, utcnow

logger = logging.getLogger("privatune.accounts")
RESET_TTL = timedelta(hours=1)
PENDING_SECOND_FACTOR_TTL = timedelta(minutes=5)
RESET_PURPOSE = "password_reset"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def email_or_400(raw: str, field_name: str = "email") -> str:
    try:
        return normalize_email(raw)
    except InvalidEmail as exc:
        raise BadRequest(f"{field_name}: {exc}", code="invalid_email") from exc


def policy_or_400(password: str, email: str, display_name: str | None) -> None:
    try:
        check_password(password, email, display_name)
    except WeakPassword as exc:
        raise BadRequest(
            str(exc), code="weak_password", details={"problems": exc.problems}
        ) from exc


def display_name_or_400(raw: str | None, email: str) -> str:
    name = " ".join((raw or "").split())
    if len(name) > 200:
        raise BadRequest("display_name must be at most 200 characters", code="invalid_user")
    return name or email.partition("@")[0]


@dataclass(frozen=True)
class SessionGrant:
    """What the HTTP session should hold after a step of signing in."""

    data: dict[str, Any]
    second_factor_required: bool = False


def signed_in_session(user: User, tenant_slug: str | None) -> dict[str, Any]:
    return {
        "uid": user.id,
        "epoch": user.session_epoch,
        "tenant": tenant_slug,
        "at": utcnow().isoformat(),
        ROTATE_KEY: True,
    }


def memberships_of(session: Session, user_id: str) -> list[schemas.TenantMembership]:
    rows = session.execute(
        select(Tenant.slug, Tenant.name, Membership.role, Tenant.status)
        .join(Tenant, Tenant.id == Membership.tenant_id)
        .where(Membership.user_id == user_id)
        .order_by(Tenant.slug)
    ).all()
    return [schemas.TenantMembership(s, n, r, st) for s, n, r, st in rows]


def user_view(session: Session, user: User) -> schemas.User:
    return schemas.User(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        is_operator=user.is_operator,
        second_factor=user.totp_enabled_at is not None,
        created_at=user.created_at,
        last_sign_in_at=user.last_sign_in_at,
        tenants=memberships_of(session, user.id),
    )


def end_sessions(session: Session, user: User) -> None:
    """Every session of the user ends (those in flight too: their epoch no longer matches)."""
    user.session_epoch += 1
    end_user_sessions(session, user.id)


class AccountService:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- sign-in --------------------------------------------------------------------------
    def sign_in(
        self,
        email: str,
        password: str,
        client: str | None,
        code: str | None = None,
        recovery_code: str | None = None,
    ) -> SessionGrant:
        """Password first; a user with a second factor then needs a code (in the same request
        or the next step). The same 401 for an unknown e-mail and a wrong password, after the
        same work."""
        typed = " ".join(email.split()).casefold()
        account, address = throttle.account_key(typed), throttle.address_key(client)
        with self.db.session() as session:
            throttle.check(session, [account, address])
            try:
                normalized: str | None = normalize_email(email)
            except InvalidEmail:
                normalized = None
            user = (
                session.scalar(select(User).where(User.email == normalized)) if normalized else None
            )
            ok, replacement = False, None
            if user is not None and user.password_hash and user.disabled_at is None:
                ok, replacement = passwords.verify_password(password, user.password_hash)
            else:
                passwords.dummy_verify(password)
            if not ok or user is None:
                throttle.record_failure(session, account, address)
                audit.append(
                    session,
                    None,
                    "anonymous",
                    "auth.sign_in_failed",
                    normalized or "(invalid e-mail)",
                    {"reason": "invalid_credentials"},
                )
                session.commit()
                raise InvalidCredentials(
                    "the e-mail or password is wrong (or the account is disabled)",
                    code="invalid_credentials",
                )
            if replacement:
                scheme = passwords.identify(user.password_hash or "")
                user.password_hash = replacement
                audit.append(
                    session,
                    None,
                    f"user:{user.email}",
                    "auth.password_rehashed",
                    user.email,
                    {"from": scheme, "to": "argon2id"},
                )
            throttle.record_success(session, account)
            if user.totp_enabled_at is not None:
                if not code and not recovery_code:
                    audit.append(
                        session, None, f"user:{user.email}", "auth.password_accepted", user.email
                    )
                    return SessionGrant(
                        {
                            "pending_uid": user.id,
                            "pending_epoch": user.session_epoch,
                            "pending_at": utcnow().isoformat(),
                            ROTATE_KEY: True,
                        },
                        second_factor_required=True,
                    )
                self._check_second_factor(session, user, code, recovery_code, account, address)
            return self._complete(
                session, user, "password+second_factor" if user.totp_enabled_at else "password"
            )

    def second_factor(
        self,
        pending: dict[str, Any],
        code: str | None,
        recovery_code: str | None,
        client: str | None,
    ) -> SessionGrant:
        """The second step: the session holds the user whose password was right."""
        user_id, at = pending.get("pending_uid"), pending.get("pending_at")
        if not user_id or not at:
            raise Unauthorized(
                "sign in with your e-mail and password first", code="sign_in_required"
            )
        if utcnow() - datetime.fromisoformat(at) > PENDING_SECOND_FACTOR_TTL:
            raise Unauthorized(
                "the sign-in took too long; sign in with your password again",
                code="sign_in_expired",
            )
        with self.db.session() as session:
            user = session.get(User, user_id)
            if user is None or user.disabled_at is not None:
                raise InvalidCredentials("the account is disabled", code="invalid_credentials")
            if pending.get("pending_epoch") != user.session_epoch:
                raise Unauthorized("sign in again", code="sign_in_required")
            account = throttle.account_key(user.email)
            address = throttle.address_key(client)
            throttle.check(session, [account, address])
            self._check_second_factor(session, user, code, recovery_code, account, address)
            return self._complete(session, user, "second_factor")

    def _check_second_factor(
        self,
        session: Session,
        user: User,
        code: str | None,
        recovery_code: str | None,
        account: str,
        address: str,
    ) -> None:
        if recovery_code:
            row = session.scalar(
                select(RecoveryCode).where(
                    RecoveryCode.user_id == user.id,
                    RecoveryCode.code_hash == totp.recovery_code_hash(recovery_code),
                    RecoveryCode.used_at.is_(None),
                )
            )
            if row is not None:
                row.used_at = utcnow()
                left = self._recovery_codes_left(session, user.id)
                audit.append(
                    session,
                    None,
                    f"user:{user.email}",
                    "auth.recovery_code_used",
                    user.email,
                    {"codes_left": left},
                )
                return
        elif code and user.totp_secret:
            step = totp.verify(secret_box.decrypt(user.totp_secret), code, user.totp_last_step)
            if step is not None:
                user.totp_last_step = step
                return
        throttle.record_failure(session, account, address)
        audit.append(
            session,
            None,
            f"user:{user.email}",
            "auth.second_factor_failed",
            user.email,
            {"kind": "recovery_code" if recovery_code else "totp"},
        )
        session.commit()
        raise InvalidCredentials(
            "the code is wrong or was already used; enter the current code from your "
            "authenticator app, or one of your recovery codes",
            code="invalid_second_factor",
        )

    @staticmethod
    def _recovery_codes_left(session: Session, user_id: str) -> int:
        return len(
            session.scalars(
                select(RecoveryCode.id).where(
                    RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
                )
            ).all()
        )

    def _complete(self, session: Session, user: User, method: str) -> SessionGrant:
        user.last_sign_in_at = utcnow()
        tenants = memberships_of(session, user.id)
        audit.append(
            session, None, f"user:{user.email}", "auth.signed_in", user.email, {"method": method}
        )
        session.flush()
        first = tenants[0].tenant if tenants else None
        return SessionGrant(signed_in_session(user, first))

    def signed_out(self, principal: Principal) -> None:
        with self.db.session() as session:
            audit.append(session, None, principal.actor, "auth.signed_out", principal.email or "")

    # --- who am I -------------------------------------------------------------------------
    def me(self, principal: Principal) -> schemas.User:
        with self.db.session() as session:
            user = session.get(User, principal.user_id)
            if user is None:
                raise Unauthorized("sign in again", code="sign_in_required")
            return user_view(session, user)

    def choose_tenant(self, principal: Principal, tenant_slug: str) -> str:
        with self.db.session() as session:
            found = [t for t in memberships_of(session, principal.user_id or "")]
            if not any(t.tenant == tenant_slug for t in found):
                raise Forbidden(
                    f"you are not a member of a tenant {tenant_slug!r}; GET /v1/auth/me lists yours",
                    code="not_a_member",
                )
            return tenant_slug

    # --- passwords ------------------------------------------------------------------------
    def change_password(self, principal: Principal, current: str, new: str) -> SessionGrant:
        """Ends every session of the user; the caller's continues under a new id."""
        with self.db.session() as session:
            user = session.get(User, principal.user_id)
            if user is None or not user.password_hash:
                raise Unauthorized("sign in again", code="sign_in_required")
            ok, _ = passwords.verify_password(current, user.password_hash)
            if not ok:
                audit.append(
                    session,
                    None,
                    principal.actor,
                    "auth.password_change_failed",
                    user.email,
                    {"reason": "wrong current password"},
                )
                session.commit()
                raise InvalidCredentials(
                    "the current password is wrong", code="invalid_credentials"
                )
            if new == current:
                raise BadRequest(
                    "the new password is the same as the current one", code="weak_password"
                )
            policy_or_400(new, user.email, user.display_name)
            user.password_hash = passwords.hash_password(new)
            user.password_changed_at = utcnow()
            end_sessions(session, user)
            audit.append(session, None, principal.actor, "auth.password_changed", user.email)
            session.flush()
            return SessionGrant(signed_in_session(user, principal.tenant_slug))

    def request_password_reset(self, email: str) -> None:
        """Answers the same whether or not the address has an account; the link goes by mail
        (or to the log, for the operator: never in the response)."""
        try:
            normalized = normalize_email(email)
        except InvalidEmail:
            return
        with self.db.session() as session:
            user = session.scalar(select(User).where(User.email == normalized))
            if user is None or user.disabled_at is not None:
                return
            link = self._new_reset_link(session, user)
            audit.append(session, None, "anonymous", "auth.password_reset_requested", user.email)
        # Sent in the background: the answer must not take longer when the address exists.
        threading.Thread(target=_send_reset_logged, args=(normalized, link), daemon=True).start()

    def _new_reset_link(self, session: Session, user: User) -> str:
        plain, hashed = secret_box.new_token()
        # Earlier links stop working: only the newest one is valid.
        session.execute(
            update(UserToken)
            .where(
                UserToken.user_id == user.id,
                UserToken.purpose == RESET_PURPOSE,
                UserToken.used_at.is_(None),
            )
            .values(used_at=utcnow())
        )
        session.add(
            UserToken(
                user_id=user.id,
                purpose=RESET_PURPOSE,
                token_hash=hashed,
                expires_at=utcnow() + RESET_TTL,
            )
        )
        session.flush()
        return f"{get_settings().base_url}/reset-password?token={plain}"

    def operator_reset_link(self, user_id: str, actor: str) -> dict[str, Any]:
        """An operator asks for a reset link for a person (mailed when SMTP is set up, otherwise
        returned to the operator)."""
        with self.db.session() as session:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound(f"no user {user_id}", code="user_not_found")
            link = self._new_reset_link(session, user)
            audit.append(session, None, actor, "auth.password_reset_issued", user.email)
            email = user.email
        delivery = _send_reset(email, link)
        return {"sent": delivery.sent, "reset_url": delivery.link}

    def reset_password(self, token: str, new: str) -> None:
        with self.db.session() as session:
            row = session.scalar(
                select(UserToken)
                .where(
                    UserToken.token_hash == secret_box.token_hash(token),
                    UserToken.purpose == RESET_PURPOSE,
                )
                .with_for_update()
            )
            if row is None or row.used_at is not None or _aware(row.expires_at) <= utcnow():
                raise BadRequest(
                    "this reset link is invalid, used or expired; ask for a new one",
                    code="invalid_token",
                )
            user = session.get(User, row.user_id)
            assert user is not None
            policy_or_400(new, user.email, user.display_name)
            row.used_at = utcnow()
            user.password_hash = passwords.hash_password(new)
            user.password_changed_at = utcnow()
            end_sessions(session, user)
            audit.append(session, None, f"user:{user.email}", "auth.password_reset", user.email)

    # --- second factor --------------------------------------------------------------------
    def totp_begin(self, principal: Principal) -> dict[str, str]:
        """A new secret (pending until confirmed with a code)."""
        with self.db.session() as session:
            user = self._user(session, principal)
            if user.totp_enabled_at is not None:
                raise Conflict(
                    "a second factor is already on; turn it off first to set up another",
                    code="second_factor_enabled",
                )
            secret = totp.new_secret()
            user.totp_secret = secret_box.encrypt(secret)
            user.totp_last_step = None
            return {
                "secret": secret,
                "otpauth_uri": totp.provisioning_uri(secret, user.email),
            }

    def totp_confirm(self, principal: Principal, code: str) -> list[str]:
        """Turns the factor on; returns the recovery codes (shown once, stored hashed)."""
        with self.db.session() as session:
            user = self._user(session, principal)
            if user.totp_secret is None or user.totp_enabled_at is not None:
                raise Conflict(
                    "start the set-up first (POST /v1/auth/totp)", code="second_factor_not_pending"
                )
            step = totp.verify(secret_box.decrypt(user.totp_secret), code, None)
            if step is None:
                raise BadRequest(
                    "the code is wrong: enter the 6 digits your authenticator app shows now",
                    code="invalid_second_factor",
                )
            user.totp_last_step = step
            user.totp_enabled_at = utcnow()
            codes = self._replace_recovery_codes(session, user)
            audit.append(session, None, principal.actor, "auth.second_factor_enabled", user.email)
            return codes

    def totp_disable(self, principal: Principal, password: str) -> None:
        with self.db.session() as session:
            user = self._user(session, principal)
            ok, _ = passwords.verify_password(password, user.password_hash or "")
            if not ok:
                raise InvalidCredentials(
                    "the password is wrong; turning off the second factor needs it",
                    code="invalid_credentials",
                )
            user.totp_secret = None
            user.totp_enabled_at = None
            user.totp_last_step = None
            session.execute(
                update(RecoveryCode)
                .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
                .values(used_at=utcnow())
            )
            audit.append(session, None, principal.actor, "auth.second_factor_disabled", user.email)

    def regenerate_recovery_codes(self, principal: Principal) -> list[str]:
        with self.db.session() as session:
            user = self._user(session, principal)
            if user.totp_enabled_at is None:
                raise Conflict("turn on the second factor first", code="second_factor_not_enabled")
            codes = self._replace_recovery_codes(session, user)
            audit.append(session, None, principal.actor, "auth.recovery_codes_replaced", user.email)
            return codes

    @staticmethod
    def _replace_recovery_codes(session: Session, user: User) -> list[str]:
        session.execute(
            update(RecoveryCode)
            .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
            .values(used_at=utcnow())
        )
        codes = totp.new_recovery_codes()
        session.add_all(
            RecoveryCode(user_id=user.id, code_hash=totp.recovery_code_hash(c)) for c in codes
        )
        session.flush()
        return codes

    @staticmethod
    def _user(session: Session, principal: Principal) -> User:
        user = session.get(User, principal.user_id) if principal.user_id else None
        if user is None:
            raise Unauthorized(
                "this needs a signed-in person (a portal session), not an API key",
                code="user_required",
            )
        return user

    # --- creating people --------------------------------------------------------------------
    @staticmethod
    def create_user(
        session: Session,
        email: str,
        display_name: str | None,
        password: str | None = None,
        password_hash: str | None = None,
        is_operator: bool = False,
    ) -> User:
        """A new user (e-mail normalised, password checked against the policy or a legacy hash
        checked for format); 409 when the e-mail is taken."""
        normalized = email_or_400(email)
        if session.scalar(select(User.id).where(User.email == normalized)) is not None:
            raise Conflict(f"a user with e-mail {normalized} already exists", code="user_exists")
        name = display_name_or_400(display_name, normalized)
        if password is not None:
            policy_or_400(password, normalized, name)
            password_hash = passwords.hash_password(password)
        elif password_hash is not None:
            try:
                passwords.check_importable(password_hash)
            except ValueError as exc:
                raise BadRequest(f"{normalized}: {exc}", code="unsupported_password_hash") from exc
        user = User(
            email=normalized,
            display_name=name,
            password_hash=password_hash,
            password_changed_at=utcnow() if password is not None else None,
            is_operator=is_operator,
        )
        session.add(user)
        session.flush()
        return user

    def import_users(self, entries: Sequence[dict[str, Any]], actor: str) -> list[schemas.User]:
        """The operator's import from the product we replace: each with its PBKDF2-SHA256 or
        bcrypt hash (replaced by argon2id at the person's first sign-in), and optionally a
        tenant and role. All or nothing: one bad entry stores none."""
        with self.db.session() as session:
            out = []
            for i, entry in enumerate(entries):
                try:
                    user = self.create_user(
                        session,
                        entry["email"],
                        entry.get("display_name"),
                        password_hash=entry["password_hash"],
                        is_operator=bool(entry.get("is_operator")),
                    )
                    tenant_slug, role = entry.get("tenant"), entry.get("role") or "member"
                    if tenant_slug:
                        tenant = session.scalar(select(Tenant).where(Tenant.slug == tenant_slug))
                        if tenant is None:
                            raise NotFound(f"no tenant {tenant_slug!r}", code="tenant_not_found")
                        if role not in ROLES:
                            raise BadRequest(
                                f"role must be one of {', '.join(ROLES)}", code="invalid_role"
                            )
                        session.add(
                            Membership(
                                tenant_id=tenant.id, user_id=user.id, role=role, created_by=actor
                            )
                        )
                        session.flush()
                        audit.append(
                            session,
                            tenant.id,
                            actor,
                            "member.imported",
                            user.email,
                            {"role": role},
                        )
                except AppError as exc:
                    exc.message = f"users[{i}]: {exc.message} (nothing was imported)"
                    raise
                audit.append(
                    session,
                    None,
                    actor,
                    "user.imported",
                    user.email,
                    {"hash": passwords.identify(entry["password_hash"])},
                )
                out.append(user)
            return [user_view(session, u) for u in out]

    def list_users(self, limit: int, offset: int) -> list[schemas.User]:
        with self.db.session() as session:
            users = session.scalars(
                select(User).order_by(User.email).limit(limit).offset(offset)
            ).all()
            return [user_view(session, u) for u in users]

    def update_user(
        self, user_id: str, actor: str, is_operator: bool | None, disabled: bool | None
    ) -> schemas.User:
        with self.db.session() as session:
            user = session.get(User, user_id)
            if user is None:
                raise NotFound(f"no user {user_id}", code="user_not_found")
            changes: dict[str, Any] = {}
            if is_operator is not None and is_operator != user.is_operator:
                user.is_operator = is_operator
                changes["is_operator"] = is_operator
            if disabled is not None and disabled != (user.disabled_at is not None):
                user.disabled_at = utcnow() if disabled else None
                changes["disabled"] = disabled
                if disabled:
                    end_sessions(session, user)
            audit.append(session, None, actor, "user.updated", user.email, changes)
            return user_view(session, user)


def _send_reset_logged(email: str, link: str) -> None:
    try:
        _send_reset(email, link)
    except mailer.MailError as exc:
        logger.error("password reset mail could not be sent: %s", exc)


def _send_reset(email: str, link: str) -> mailer.Delivery:
    return mailer.send_mail(
        email,
        "Reset your privatune password",
        "Someone (hopefully you) asked to reset the password of your privatune account. "
        f"Open this link within {int(RESET_TTL.total_seconds() // 60)} minutes to choose a new "
        "one; if it was not you, ignore this message.",
        link=link,
    )
