"""Portal pages of a tenant: its members and invitations, API keys (the secret shown once),
usage against the plan's limits, and the audit log with the chain's verification. Each calls
the same services as the JSON API (api/services/members.py, keys.py, plans.py, audit.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.errors import AppError, BadRequest
from api.portal.pages import flash, may, page_scope, redirect, render
from api.security import SCOPE_MEANING, SCOPES
from api.services.audit import AuditService
from api.services.keys import MAX_KEY_DAYS, KeyService
from api.services.members import MemberService
from api.services.plans import AT_THE_LIMIT, UsageService
from resources.audit import AuditFilters

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
AUDIT_PAGE = 50
AUDIT_FILTERS = ("action", "actor", "target", "request_id", "since", "until")


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if isinstance(value, list):
        value = value[-1] if value else ""
    return str(value or "").strip()


def _list(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name)
    if value is None:
        return []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _no_store(template: Template) -> Template:
    """A page with a secret on it: never kept by the browser or a proxy."""
    template.headers.update({"Cache-Control": "no-store"})
    return template


def _when(raw: str, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError as exc:
        raise BadRequest(
            f"{name} must be a date and time (YYYY-MM-DDTHH:MM, UTC)", code="invalid_audit_query"
        ) from exc


def audit_filters(values: dict[str, str]) -> AuditFilters:
    """The page's filters as the audit service takes them: the action is a prefix."""
    action = values.get("action") or None
    if action and not action.endswith("*"):
        action += "*"
    return AuditFilters(
        action=action,
        actor=values.get("actor") or None,
        target=values.get("target") or None,
        request_id=values.get("request_id") or None,
        since=_when(values.get("since", ""), "since"),
        until=_when(values.get("until", ""), "until"),
    )


def _query(filters: AuditFilters, **extra: Any) -> str:
    """The JSON API's query string for these filters (the export link)."""
    params = {
        "action": filters.action,
        "actor": filters.actor,
        "target": filters.target,
        "request_id": filters.request_id,
        "since": filters.since.isoformat() if filters.since else None,
        "until": filters.until.isoformat() if filters.until else None,
        **extra,
    }
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


class PortalTenantController(Controller):
    path = "/t/{tenant:str}"
    include_in_schema = False

    # --- members and invitations -------------------------------------------------------------
    def _members_page(
        self,
        request: Request,
        members: MemberService,
        status_code: int = 200,
        error: str | None = None,
        invited: Any = None,
        values: dict[str, str] | None = None,
    ) -> Template:
        admin = may(request, "admin")
        people = members.members()
        return render(
            request,
            "tenant/members.html",
            active="members",
            status_code=status_code,
            members=people,
            manageable={m.user_id for m in people if admin and members.may_manage(m.role)},
            roles=members.grantable_roles() if admin else [],
            invitations=members.invitations() if admin else [],
            admin=admin,
            error=error,
            invited=invited,
            values=values or {},
        )

    @get("/members", guards=[page_scope("read")], sync_to_thread=True)
    def members(self, request: Request, tenant: str, members: MemberService) -> Template:
        return self._members_page(request, members)

    @post("/members/invitations", guards=[page_scope("admin")], sync_to_thread=True)
    def invite(
        self, request: Request, tenant: str, data: Form, members: MemberService
    ) -> Template | Redirect:
        email, role = _text(data, "email"), _text(data, "role")
        try:
            invitation = members.invite(email, role)
        except AppError as exc:
            return self._members_page(
                request,
                members,
                exc.status_code,
                error=exc.message,
                values={"email": email, "role": role},
            )
        if invitation.sent:
            flash(request, f"Invitation mailed to {invitation.email} ({invitation.role}).")
            return redirect(f"/t/{tenant}/members")
        # No mail server: the link is on this page, this once, for the admin to pass on.
        return _no_store(self._members_page(request, members, 201, invited=invitation))

    @post(
        "/members/invitations/{invitation_id:str}/revoke",
        guards=[page_scope("admin")],
        sync_to_thread=True,
    )
    def revoke_invitation(
        self, request: Request, tenant: str, invitation_id: str, members: MemberService
    ) -> Template | Redirect:
        try:
            members.revoke_invitation(invitation_id)
        except AppError as exc:
            return self._members_page(request, members, exc.status_code, error=exc.message)
        flash(request, "Invitation revoked: its link no longer works.")
        return redirect(f"/t/{tenant}/members")

    @post("/members/{user_id:str}/role", guards=[page_scope("admin")], sync_to_thread=True)
    def change_role(
        self, request: Request, tenant: str, user_id: str, data: Form, members: MemberService
    ) -> Template | Redirect:
        try:
            member = members.change_role(user_id, _text(data, "role"))
        except AppError as exc:
            return self._members_page(request, members, exc.status_code, error=exc.message)
        flash(request, f"{member.email} is now {member.role}.")
        return redirect(f"/t/{tenant}/members")

    @post("/members/{user_id:str}/remove", guards=[page_scope("admin")], sync_to_thread=True)
    def remove(
        self, request: Request, tenant: str, user_id: str, members: MemberService
    ) -> Template | Redirect:
        email = next((m.email for m in members.members() if m.user_id == user_id), user_id)
        try:
            members.remove(user_id)
        except AppError as exc:
            return self._members_page(request, members, exc.status_code, error=exc.message)
        flash(request, f"{email} was removed from {tenant}; their API keys stop working.")
        return redirect(f"/t/{tenant}/members")

    # --- API keys ----------------------------------------------------------------------------
    def _keys_page(
        self,
        request: Request,
        keys: KeyService,
        show_revoked: bool = False,
        status_code: int = 200,
        error: str | None = None,
        created: Any = None,
        values: dict[str, Any] | None = None,
    ) -> Template:
        own = [s for s in SCOPES if may(request, s)]
        return render(
            request,
            "tenant/keys.html",
            active="keys",
            status_code=status_code,
            keys=keys.keys(include_revoked=show_revoked),
            show_revoked=show_revoked,
            scopes=[(s, SCOPE_MEANING[s]) for s in own],
            max_days=MAX_KEY_DAYS,
            error=error,
            created=created,
            values=values or {"scopes": ["read"]},  # the least a key can do, to start from
        )

    @get("/keys", guards=[page_scope("admin")], sync_to_thread=True)
    def keys(
        self, request: Request, tenant: str, keys: KeyService, revoked: bool = False
    ) -> Template:
        return self._keys_page(request, keys, show_revoked=revoked)

    @post("/keys", guards=[page_scope("admin")], sync_to_thread=True)
    def create_key(self, request: Request, tenant: str, data: Form, keys: KeyService) -> Template:
        name, scopes, days = _text(data, "name"), _list(data, "scopes"), _text(data, "days")
        values = {"name": name, "scopes": scopes, "days": days}
        try:
            expires_in_days = int(days) if days else None
        except ValueError:
            return self._keys_page(
                request,
                keys,
                status_code=400,
                error=f"expiry must be a whole number of days from 1 to {MAX_KEY_DAYS}, or blank",
                values=values,
            )
        try:
            created = keys.create(name, scopes, expires_in_days=expires_in_days)
        except AppError as exc:
            return self._keys_page(
                request, keys, status_code=exc.status_code, error=exc.message, values=values
            )
        # The secret is in this answer only (rendered here, never stored in the session).
        return _no_store(self._keys_page(request, keys, status_code=201, created=created))

    @post("/keys/{key_id:str}/revoke", guards=[page_scope("admin")], sync_to_thread=True)
    def revoke_key(
        self, request: Request, tenant: str, key_id: str, keys: KeyService
    ) -> Template | Redirect:
        try:
            key = keys.revoke(key_id)
        except AppError as exc:
            return self._keys_page(request, keys, status_code=exc.status_code, error=exc.message)
        flash(request, f"Key {key.name} ({key.prefix}) revoked: requests with it are refused.")
        return redirect(f"/t/{tenant}/keys")

    # --- usage -------------------------------------------------------------------------------
    @get("/usage", guards=[page_scope("read")], sync_to_thread=True)
    def usage(self, request: Request, tenant: str, usage: UsageService) -> Template:
        return render(
            request,
            "tenant/usage.html",
            active="usage",
            usage=usage.report(),
            at_the_limit=AT_THE_LIMIT,
        )

    # --- audit log ---------------------------------------------------------------------------
    @get("/audit", guards=[page_scope("admin")], sync_to_thread=True)
    def audit(
        self,
        request: Request,
        tenant: str,
        audit_trail: AuditService,
        action: str = "",
        actor: str = "",
        target: str = "",
        request_id: str = "",
        since: str = "",
        until: str = "",
        before_seq: int | None = None,
    ) -> Template:
        values = {
            "action": action.strip().removesuffix("*"),
            "actor": actor.strip(),
            "target": target.strip(),
            "request_id": request_id.strip(),
            "since": since.strip(),
            "until": until.strip(),
        }
        page: dict[str, Any] = {"items": [], "next_before_seq": None}
        error, status_code, filters = None, 200, AuditFilters()
        try:
            filters = audit_filters(values)
            page = audit_trail.list(filters, AUDIT_PAGE, before_seq)
        except AppError as exc:
            error, status_code = exc.message, exc.status_code
        shown = {k: v for k, v in values.items() if v}
        older = None
        if page["next_before_seq"]:
            older = "?" + urlencode({**shown, "before_seq": page["next_before_seq"]})
        return render(
            request,
            "tenant/audit.html",
            active="audit",
            status_code=status_code,
            values=values,
            events=page["items"],
            older=older,
            newest="?" + urlencode(shown) if before_seq else None,
            export=f"/v1/audit?{_query(filters, format='jsonl')}",
            verification=audit_trail.verify(),
            error=error,
            filtered=bool(shown),
        )
