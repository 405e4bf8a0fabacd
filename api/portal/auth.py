"""Portal pages for signing in and a person's own account: sign in (and the second factor),
sign out, accept an invitation, reset a password, open sign-up, the account page (password,
second factor, recovery codes) and the tenant switcher. Each calls the same services as the JSON
API (api/services/accounts.py, members.py, tenants.py)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.errors import AppError
from api.portal.pages import flash, page_person, redirect, render
from api.security import Principal, public
from api.services.accounts import AccountService, SessionGrant
from api.services.members import InvitationService
from api.services.tenants import TenantService
from resources.settings import get_settings

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _start(request: Request, grant: SessionGrant) -> None:
    request.set_session(dict(grant.data))


def _home(principal: Principal | None, accounts: AccountService) -> str:
    if principal is None or principal.kind != "user":
        return "/sign-in"
    tenants = accounts.me(principal).tenants
    chosen = principal.tenant_slug or (tenants[0].tenant if tenants else None)
    return f"/t/{chosen}/projects" if chosen else "/account"


def _account(
    request: Request,
    accounts: AccountService,
    principal: Principal,
    *,
    totp: dict[str, str] | None = None,
    recovery_codes: list[str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Template:
    """The account page, with what the last action left to show (a new TOTP secret, recovery
    codes shown once, or what went wrong)."""
    return render(
        request,
        "auth/account.html",
        status_code=status_code,
        active="account",
        user=accounts.me(principal),
        totp=totp,
        recovery_codes=recovery_codes,
        error=error,
    )


class PortalAuthController(Controller):
    tags = ["portal"]
    include_in_schema = False

    @get("/", guards=[public], sync_to_thread=True)
    def home(self, caller: Principal | None, accounts: AccountService) -> Redirect:
        """The portal's front door: your projects, or the sign-in page."""
        return redirect(_home(caller, accounts))

    @get("/sign-in", guards=[public])
    async def sign_in_page(self, request: Request, next: str | None = None) -> Template:
        return render(
            request,
            "auth/sign_in.html",
            next=_safe_next(next),
            open_signup=get_settings().open_signup,
            email="",
            error=None,
        )

    @post("/sign-in", guards=[public], sync_to_thread=True)
    def sign_in(
        self, request: Request, data: Form, accounts: AccountService
    ) -> Redirect | Template:
        target = _safe_next(data.get("next"))
        email = str(data.get("email") or "")
        try:
            grant = accounts.sign_in(email, str(data.get("password") or ""), _client(request))
        except AppError as exc:
            response = render(
                request,
                "auth/sign_in.html",
                status_code=exc.status_code,
                next=target,
                email=email,
                error=exc.message,
                open_signup=get_settings().open_signup,
            )
            response.headers.update(exc.headers)
            return response
        _start(request, grant)
        if grant.second_factor_required:
            return redirect(f"/sign-in/second-factor?next={quote(target)}")
        return redirect(target if target != "/" else "/")

    @get("/sign-in/second-factor", guards=[public])
    async def second_factor_page(
        self, request: Request, next: str | None = None
    ) -> Template | Redirect:
        if not (request.session or {}).get("pending_uid"):
            return redirect("/sign-in")
        return render(request, "auth/second_factor.html", next=_safe_next(next), error=None)

    @post("/sign-in/second-factor", guards=[public], sync_to_thread=True)
    def second_factor(
        self, request: Request, data: Form, accounts: AccountService
    ) -> Redirect | Template:
        target = _safe_next(data.get("next"))
        code = str(data.get("code") or "").strip() or None
        recovery = str(data.get("recovery_code") or "").strip() or None
        try:
            grant = accounts.second_factor(
                dict(request.session or {}), code, recovery, _client(request)
            )
        except AppError as exc:
            if exc.code in ("sign_in_required", "sign_in_expired"):
                flash(request, exc.message, "bad")
                return redirect("/sign-in")
            return render(
                request,
                "auth/second_factor.html",
                status_code=exc.status_code,
                next=target,
                error=exc.message,
            )
        _start(request, grant)
        return redirect(target)

    @post("/sign-out", guards=[public], sync_to_thread=True)
    def sign_out(
        self, request: Request, caller: Principal | None, accounts: AccountService
    ) -> Redirect:
        if caller is not None and caller.kind == "user":
            accounts.signed_out(caller)
        request.clear_session()
        return redirect("/sign-in")

    @get("/switch", guards=[page_person])
    async def switch(self, tenant: str) -> Redirect:
        """The tenant switcher (a GET form): the pages of that tenant."""
        return redirect(f"/t/{quote(tenant)}/projects")

    # --- invitations ---------------------------------------------------------------------
    @get("/invitations/accept", guards=[public], sync_to_thread=True)
    def invitation_page(
        self, request: Request, invitations: InvitationService, token: str = ""
    ) -> Template:
        try:
            preview = invitations.preview(token)
        except AppError as exc:
            return render(
                request,
                "error.html",
                status_code=400,
                title="This invitation cannot be used",
                code=exc.code,
                message=exc.message,
            )
        return render(
            request, "auth/accept.html", token=token, invitation=preview, error=None, errors={}
        )

    @post("/invitations/accept", guards=[public], sync_to_thread=True)
    def accept_invitation(
        self,
        request: Request,
        data: Form,
        caller: Principal | None,
        invitations: InvitationService,
    ) -> Redirect | Template:
        token = str(data.get("token") or "")
        password = str(data.get("password") or "") or None
        try:
            if (
                password
                and data.get("password_repeat") is not None
                and password != data.get("password_repeat")
            ):
                raise AppError("the two passwords differ: type the same one twice", code="mismatch")
            grant = invitations.accept(token, caller, password, data.get("display_name"))
        except AppError as exc:
            try:
                preview = invitations.preview(token)
            except AppError:
                preview = None
            return render(
                request,
                "auth/accept.html",
                status_code=exc.status_code,
                token=token,
                invitation=preview,
                error=exc.message,
                errors={},
            )
        _start(request, grant)
        flash(request, f"Welcome to {grant.data.get('tenant')}.")
        return redirect(f"/t/{grant.data.get('tenant')}/projects")

    # --- password reset --------------------------------------------------------------------
    @get("/reset-password", guards=[public])
    async def reset_page(self, request: Request, token: str = "") -> Template:
        return render(request, "auth/reset.html", token=token, sent=False, error=None)

    @post("/reset-password", guards=[public], sync_to_thread=True)
    def reset(self, request: Request, data: Form, accounts: AccountService) -> Template | Redirect:
        token = str(data.get("token") or "")
        if not token:
            accounts.request_password_reset(str(data.get("email") or ""))
            return render(request, "auth/reset.html", token="", sent=True, error=None)
        try:
            accounts.reset_password(token, str(data.get("password") or ""))
        except AppError as exc:
            return render(
                request,
                "auth/reset.html",
                status_code=exc.status_code,
                token=token,
                sent=False,
                error=exc.message,
            )
        flash(request, "Your password is changed; sign in with it.")
        return redirect("/sign-in")

    # --- open sign-up ------------------------------------------------------------------------
    @get("/sign-up", guards=[public])
    async def sign_up_page(self, request: Request) -> Template:
        return render(
            request,
            "auth/sign_up.html",
            open_signup=get_settings().open_signup,
            values={},
            error=None,
            api_key=None,
        )

    @post("/sign-up", guards=[public], sync_to_thread=True)
    def sign_up(self, request: Request, data: Form, tenants: TenantService) -> Template:
        values = {
            k: str(v)
            for k, v in data.items()
            if k in ("email", "tenant_slug", "tenant_name", "display_name")
        }
        if not get_settings().open_signup:
            return render(
                request,
                "auth/sign_up.html",
                status_code=403,
                open_signup=False,
                values=values,
                error="this installation has no open sign-up: ask its operator for an invitation",
                api_key=None,
            )
        try:
            created = tenants.sign_up(
                values.get("tenant_slug", ""),
                values.get("tenant_name"),
                values.get("email", ""),
                str(data.get("password") or ""),
                values.get("display_name"),
            )
        except AppError as exc:
            return render(
                request,
                "auth/sign_up.html",
                status_code=exc.status_code,
                open_signup=True,
                values=values,
                error=exc.message,
                api_key=None,
            )
        assert created.grant is not None
        _start(request, created.grant)
        return render(
            request,
            "auth/sign_up.html",
            open_signup=True,
            values=values,
            error=None,
            api_key=created.api_key,
            tenant_slug=created.tenant.slug,
        )

    # --- your account --------------------------------------------------------------------
    @get("/account", guards=[page_person], sync_to_thread=True)
    def account(self, request: Request, principal: Principal, accounts: AccountService) -> Template:
        return _account(request, accounts, principal)

    @post("/account/password", guards=[page_person], sync_to_thread=True)
    def change_password(
        self, request: Request, principal: Principal, data: Form, accounts: AccountService
    ) -> Template | Redirect:
        try:
            if data.get("new_password") != data.get("new_password_repeat"):
                raise AppError(
                    "the two new passwords differ: type the same one twice", code="mismatch"
                )
            grant = accounts.change_password(
                principal,
                str(data.get("current_password") or ""),
                str(data.get("new_password") or ""),
            )
        except AppError as exc:
            return _account(
                request, accounts, principal, error=exc.message, status_code=exc.status_code
            )
        _start(request, grant)
        flash(request, "Password changed; your other sessions were signed out.")
        return redirect("/account")

    @post("/account/totp", guards=[page_person], sync_to_thread=True)
    def totp_begin(
        self, request: Request, principal: Principal, accounts: AccountService
    ) -> Template:
        try:
            totp = accounts.totp_begin(principal)
            error = None
        except AppError as exc:
            totp, error = None, exc.message
        return _account(request, accounts, principal, totp=totp, error=error)

    @post("/account/totp/confirm", guards=[page_person], sync_to_thread=True)
    def totp_confirm(
        self, request: Request, principal: Principal, data: Form, accounts: AccountService
    ) -> Template:
        try:
            codes = accounts.totp_confirm(principal, str(data.get("code") or ""))
            error = None
        except AppError as exc:
            codes, error = None, exc.message
        return _account(
            request,
            accounts,
            principal,
            recovery_codes=codes,
            error=error,
            status_code=200 if codes else 400,
        )

    @post("/account/totp/disable", guards=[page_person], sync_to_thread=True)
    def totp_disable(
        self, request: Request, principal: Principal, data: Form, accounts: AccountService
    ) -> Template | Redirect:
        try:
            accounts.totp_disable(principal, str(data.get("password") or ""))
        except AppError as exc:
            return _account(
                request, accounts, principal, error=exc.message, status_code=exc.status_code
            )
        flash(request, "The second factor is off.")
        return redirect("/account")

    @post("/account/recovery-codes", guards=[page_person], sync_to_thread=True)
    def recovery_codes(
        self, request: Request, principal: Principal, accounts: AccountService
    ) -> Template:
        return _account(
            request,
            accounts,
            principal,
            recovery_codes=accounts.regenerate_recovery_codes(principal),
        )
