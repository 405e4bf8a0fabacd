"""Signing in and a person's own account: sign-in (password, then the second factor when the
account has one), sign-out, who am I, the tenant to act in, password change and reset, TOTP
set-up and recovery codes, and open sign-up."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.middleware.csrf import generate_csrf_token

from api import schemas
from api.csrf import CSRF_COOKIE
from api.errors import Forbidden
from api.security import (
    ROLE_SCOPES,
    Principal,
    public,
    requires_authentication,
    requires_user,
)
from api.services.accounts import AccountService, SessionGrant
from api.services.members import InvitationService
from api.services.tenants import TenantService
from resources.settings import get_settings


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def start_session(request: Request, grant: SessionGrant) -> None:
    request.set_session(dict(grant.data))


def csrf_cookie(request: Request) -> tuple[str, list[Cookie]]:
    """The CSRF token a browser (or a script using the session cookie) must send back in the
    X-CSRFToken header; set as a cookie when the client has none yet."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing:
        return existing, []
    token = generate_csrf_token(secret=request.app.state["csrf_secret"])
    cookie = Cookie(
        key=CSRF_COOKIE,
        value=token,
        path="/",
        secure=get_settings().cookies_secure,
        httponly=False,
        samesite="lax",
    )
    return token, [cookie]


def me_view(principal: Principal, user: schemas.User | None) -> schemas.Me:
    return schemas.Me(
        kind=principal.kind,
        actor=principal.actor,
        tenant=principal.tenant_slug,
        role=principal.role,
        scopes=sorted(principal.scopes),
        user=user,
    )


class AuthController(Controller):
    path = "/v1/auth"
    tags = ["auth"]

    @post("/sign-in", operation_id="signIn", sync_to_thread=True, status_code=200, guards=[public])
    def sign_in(
        self, request: Request, data: schemas.SignIn, accounts: AccountService
    ) -> Response[schemas.SignInResult]:
        """Sign in with e-mail and password. An account with a second factor answers
        `second_factor_required` (send the code to /v1/auth/second-factor, or with the password
        as `code`). Failed attempts are throttled per account and per address (429 with
        Retry-After); the answer is the same for an unknown e-mail and a wrong password."""
        grant = accounts.sign_in(
            data.email, data.password, client_address(request), data.code, data.recovery_code
        )
        return self._signed_in(request, grant, accounts, data.tenant)

    @post(
        "/second-factor",
        operation_id="signInSecondFactor",
        sync_to_thread=True,
        status_code=200,
        guards=[public],
    )
    def second_factor(
        self, request: Request, data: schemas.SecondFactor, accounts: AccountService
    ) -> Response[schemas.SignInResult]:
        """The second step of signing in: the current code from the authenticator app, or a
        recovery code (each works once)."""
        grant = accounts.second_factor(
            dict(request.session or {}), data.code, data.recovery_code, client_address(request)
        )
        return self._signed_in(request, grant, accounts, None)

    def _signed_in(
        self,
        request: Request,
        grant: SessionGrant,
        accounts: AccountService,
        tenant: str | None,
    ) -> Response[schemas.SignInResult]:
        token, cookies = csrf_cookie(request)
        if grant.second_factor_required:
            start_session(request, grant)
            return Response(
                schemas.SignInResult(status="second_factor_required", csrf_token=token),
                cookies=cookies,
            )
        data = dict(grant.data)
        principal = Principal(kind="user", user_id=data["uid"])
        if tenant:
            data["tenant"] = accounts.choose_tenant(principal, tenant)
        start_session(request, SessionGrant(data))
        user = accounts.me(principal)
        return Response(
            schemas.SignInResult(
                status="signed_in", user=user, tenant=data.get("tenant"), csrf_token=token
            ),
            cookies=cookies,
        )

    @post(
        "/sign-out",
        operation_id="signOut",
        sync_to_thread=True,
        status_code=204,
        guards=[requires_authentication],
    )
    def sign_out(self, request: Request, principal: Principal, accounts: AccountService) -> None:
        """End this portal session (an API key is not a session: revoke it instead)."""
        if principal.kind != "user":
            raise Forbidden(
                "an API key has no session to end; revoke the key (DELETE /v1/keys/{id})",
                code="user_required",
            )
        accounts.signed_out(principal)
        request.clear_session()

    @get("/me", operation_id="getMe", sync_to_thread=True, guards=[requires_authentication])
    def me(self, principal: Principal, accounts: AccountService) -> schemas.Me:
        """The caller: the person (their tenants and roles, second factor) or the API key
        (tenant, role, scopes)."""
        user = accounts.me(principal) if principal.kind == "user" else None
        return me_view(principal, user)

    @post(
        "/tenant",
        operation_id="chooseTenant",
        sync_to_thread=True,
        status_code=200,
        guards=[requires_user],
    )
    def choose_tenant(
        self,
        request: Request,
        data: schemas.TenantChoice,
        principal: Principal,
        accounts: AccountService,
    ) -> schemas.Me:
        """The tenant this session acts in from now on (one of yours)."""
        slug = accounts.choose_tenant(principal, data.tenant)
        request.set_session({**dict(request.session), "tenant": slug})
        user = accounts.me(principal)
        role = next(t.role for t in user.tenants if t.tenant == slug)
        return schemas.Me(
            kind="user",
            actor=principal.actor,
            tenant=slug,
            role=role,
            scopes=sorted(ROLE_SCOPES[role]),
            user=user,
        )

    @post(
        "/password",
        operation_id="changePassword",
        sync_to_thread=True,
        status_code=200,
        guards=[requires_user],
    )
    def change_password(
        self,
        request: Request,
        data: schemas.PasswordChange,
        principal: Principal,
        accounts: AccountService,
    ) -> schemas.Me:
        """Change your password: every session of yours ends, this one continues under a new
        id."""
        grant = accounts.change_password(principal, data.current_password, data.new_password)
        start_session(request, grant)
        return me_view(principal, accounts.me(principal))

    @post(
        "/password-reset",
        operation_id="requestPasswordReset",
        sync_to_thread=True,
        status_code=202,
        guards=[public],
    )
    def request_reset(
        self, data: schemas.PasswordResetRequest, accounts: AccountService
    ) -> schemas.Accepted:
        """Mail a single-use reset link (valid one hour) to the address, if it has an account.
        The answer is the same either way; without a mail server the link goes to the log for
        the operator, never into this answer."""
        accounts.request_password_reset(data.email)
        return schemas.Accepted(
            status="accepted",
            message="if the address has an account, a reset link is on its way",
        )

    @post(
        "/password-reset/confirm",
        operation_id="confirmPasswordReset",
        sync_to_thread=True,
        status_code=204,
        guards=[public],
    )
    def reset(self, data: schemas.PasswordReset, accounts: AccountService) -> None:
        """Choose a new password with the link's token; every session of the account ends."""
        accounts.reset_password(data.token, data.new_password)

    @post(
        "/totp",
        operation_id="beginTotp",
        sync_to_thread=True,
        status_code=201,
        guards=[requires_user],
    )
    def totp_begin(self, principal: Principal, accounts: AccountService) -> schemas.TotpSetup:
        """Start setting up a second factor: put the secret in an authenticator app, then
        confirm with a code."""
        return schemas.TotpSetup(**accounts.totp_begin(principal))

    @post(
        "/totp/confirm",
        operation_id="confirmTotp",
        sync_to_thread=True,
        status_code=200,
        guards=[requires_user],
    )
    def totp_confirm(
        self, data: schemas.TotpConfirm, principal: Principal, accounts: AccountService
    ) -> schemas.RecoveryCodes:
        """Turn the second factor on; returns recovery codes, shown this once."""
        return schemas.RecoveryCodes(accounts.totp_confirm(principal, data.code))

    @post(
        "/totp/disable",
        operation_id="disableTotp",
        sync_to_thread=True,
        status_code=204,
        guards=[requires_user],
    )
    def totp_disable(
        self, data: schemas.TotpDisable, principal: Principal, accounts: AccountService
    ) -> None:
        """Turn the second factor off (needs your password); unused recovery codes stop
        working."""
        accounts.totp_disable(principal, data.password)

    @post(
        "/recovery-codes",
        operation_id="regenerateRecoveryCodes",
        sync_to_thread=True,
        status_code=200,
        guards=[requires_user],
    )
    def recovery_codes(
        self, principal: Principal, accounts: AccountService
    ) -> schemas.RecoveryCodes:
        """New recovery codes (the old ones stop working), shown this once."""
        return schemas.RecoveryCodes(accounts.regenerate_recovery_codes(principal))

    @post("/sign-up", operation_id="signUp", sync_to_thread=True, status_code=201, guards=[public])
    def sign_up(
        self,
        request: Request,
        data: schemas.SignUp,
        tenants: TenantService,
        accounts: AccountService,
    ) -> Response[schemas.SignUpResult]:
        """Open sign-up (where the installation enables it): a new person, their tenant on the
        free plan with them as owner, signed in; the tenant's first API key is shown once."""
        if not get_settings().open_signup:
            raise Forbidden(
                "this installation has no open sign-up: ask its operator for an invitation",
                code="signup_closed",
            )
        created = tenants.sign_up(
            data.tenant_slug, data.tenant_name, data.email, data.password, data.display_name
        )
        assert created.grant is not None
        start_session(request, created.grant)
        _, cookies = csrf_cookie(request)
        user = accounts.me(Principal(kind="user", user_id=created.grant.data["uid"]))
        return Response(
            schemas.SignUpResult(user=user, tenant=created.tenant, api_key=created.api_key),
            status_code=201,
            cookies=cookies,
        )


class InvitationController(Controller):
    path = "/v1/invitations"
    tags = ["members"]

    @get("/{token:str}", operation_id="previewInvitation", sync_to_thread=True, guards=[public])
    def preview(self, token: str, invitations: InvitationService) -> schemas.InvitationPreview:
        """What an invitation is for (tenant, role, e-mail), given its token."""
        return schemas.InvitationPreview(**invitations.preview(token))

    @post(
        "/accept",
        operation_id="acceptInvitation",
        sync_to_thread=True,
        status_code=200,
        guards=[public],
    )
    def accept(
        self,
        request: Request,
        data: schemas.InvitationAccept,
        caller: Principal | None,
        invitations: InvitationService,
        accounts: AccountService,
    ) -> Response[schemas.SignInResult]:
        """Join the tenant with the invited role: a new person chooses a password (the policy
        applies); someone with an account gives its password or is signed in. Signs in."""
        grant = invitations.accept(data.token, caller, data.password, data.display_name)
        start_session(request, grant)
        token, cookies = csrf_cookie(request)
        user = accounts.me(Principal(kind="user", user_id=grant.data["uid"]))
        return Response(
            schemas.SignInResult(
                status="signed_in", user=user, tenant=grant.data.get("tenant"), csrf_token=token
            ),
            cookies=cookies,
        )
