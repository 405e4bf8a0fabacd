"""What every portal page shares: who is signed in and in which tenant (from the URL), the
guards that send a visitor to the sign-in page or answer 403/404 pages, flash messages, and
`render()` with the layout's context. Page handlers validate, call a service (api/services) and
render; no business rule lives here or in a template."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotFoundException
from litestar.handlers.base import BaseRouteHandler
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from api.errors import AppError, Forbidden, NotFound
from api.security import (
    SCOPE_MEANING,
    Policy,
    Principal,
    principal_of,
)

FLASH_KEY = "_flash"
PortalGuard = Callable[[ASGIConnection, BaseRouteHandler], Awaitable[None]]


class SignInRequired(AppError):
    """A page that needs a signed-in person; the handler sends the browser to sign in."""

    status_code, code = 401, "sign_in_required"


def _as_guard(policy: Policy, check: PortalGuard) -> PortalGuard:
    check.policy = policy  # type: ignore[attr-defined]
    return check


async def _person(connection: ASGIConnection) -> Principal:
    principal = await principal_of(connection)
    if principal is None or principal.kind != "user":
        raise SignInRequired("sign in to continue")
    return principal


async def _tenant_person(connection: ASGIConnection) -> Principal:
    """The person, acting in the tenant the URL names; not a member of it: 404 (another tenant's
    pages do not exist as far as they are concerned)."""
    principal = await _person(connection)
    wanted = connection.path_params.get("tenant")
    if wanted is None or principal.tenant_slug != wanted:
        raise NotFound("no such page", code="not_found")
    return principal


def page_scope(scope: str) -> PortalGuard:
    """A tenant page the person's role must grant `scope` for (the same scopes as the API)."""

    async def check(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        principal = await _tenant_person(connection)
        if scope not in principal.scopes:
            raise Forbidden(
                f"your role ({principal.role}) may not {SCOPE_MEANING[scope]}",
                code="insufficient_role",
            )

    return _as_guard(Policy("scope", scope), check)


async def _signed_in(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    await _person(connection)


page_person: PortalGuard = _as_guard(Policy("user"), _signed_in)


async def _operator(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    principal = await _person(connection)
    if not principal.is_operator:
        raise NotFound("no such page", code="not_found")


page_operator: PortalGuard = _as_guard(Policy("operator"), _operator)


def flash(request: Request, message: str, tone: str = "ok") -> None:
    """A message for the next page the person sees (after a redirect)."""
    messages = list(request.session.get(FLASH_KEY, [])) if request.session else []
    messages.append({"message": message, "tone": tone})
    request.set_session({**dict(request.session or {}), FLASH_KEY: messages})


def take_flashes(request: Request) -> list[dict[str, str]]:
    session = request.scope.get("session")
    if not isinstance(session, dict) or not session.get(FLASH_KEY):
        return []
    messages = list(session[FLASH_KEY])
    request.set_session({k: v for k, v in session.items() if k != FLASH_KEY})
    return messages


def current(request: Request) -> Principal | None:
    from api.security import PRINCIPAL_SCOPE_KEY

    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)  # type: ignore[call-overload]
    return principal if isinstance(principal, Principal) else None


def may(request: Request, scope: str) -> bool:
    """Whether the caller holds `scope`: what a page offers (the guards refuse the rest)."""
    principal = current(request)
    return principal is not None and scope in principal.scopes


@dataclass(frozen=True)
class NavItem:
    label: str
    href: str
    key: str


def tenant_nav(
    tenant: str, project: str | None, principal: Principal
) -> list[tuple[str, list[NavItem]]]:
    """The side navigation: the project's screens, then the tenant's."""
    sections: list[tuple[str, list[NavItem]]] = []
    base = f"/t/{tenant}"
    if project:
        p = f"{base}/projects/{project}"
        items = [
            NavItem("Overview", p, "overview"),
            NavItem("Documents", f"{p}/documents", "documents"),
            NavItem("Dataset and review", f"{p}/dataset", "dataset"),
            NavItem("Training", f"{p}/runs", "runs"),
            NavItem("Evaluations", f"{p}/evaluations", "evaluations"),
            NavItem("Deployments", f"{p}/deployments", "deployments"),
            NavItem("Chat", f"{p}/chat", "chat"),
        ]
        if "admin" in principal.scopes:
            items.append(NavItem("Settings", f"{p}/settings", "settings"))
        sections.append((f"Project {project}", items))
    tenant_items = [NavItem("Projects", f"{base}/projects", "projects")]
    tenant_items.append(NavItem("Members", f"{base}/members", "members"))
    if "admin" in principal.scopes:
        tenant_items += [
            NavItem("API keys", f"{base}/keys", "keys"),
            NavItem("Audit log", f"{base}/audit", "audit"),
        ]
    tenant_items.append(NavItem("Usage", f"{base}/usage", "usage"))
    sections.append((f"Tenant {tenant}", tenant_items))
    account = [NavItem("Your account", "/account", "account")]
    if principal.is_operator:
        account.append(NavItem("Operator", "/operator/tenants", "operator"))
    sections.append(("You", account))
    return sections


def render(
    request: Request,
    template: str,
    *,
    active: str = "",
    project: str | None = None,
    status_code: int = 200,
    **context: Any,
) -> Template:
    """A page in the layout: the person, their tenants, the navigation, pending messages."""
    principal = current(request)
    tenant = request.path_params.get("tenant") if request.path_params else None
    nav = tenant_nav(tenant, project, principal) if principal and tenant else []
    user_tenants: list[Any] = []
    if principal is not None and principal.user_id:
        from api.services.accounts import memberships_of

        with request.app.state["db"].session() as session:
            user_tenants = memberships_of(session, principal.user_id)
    if principal and not tenant and principal.kind == "user":
        nav = [("You", [NavItem("Your account", "/account", "account")])]
        if principal.is_operator:
            nav[0][1].append(NavItem("Operator", "/operator/tenants", "operator"))
    return Template(
        template_name=template,
        context={
            "principal": principal,
            "tenant": tenant,
            "project": project,
            "nav": nav,
            "active": active,
            "flashes": take_flashes(request),
            "user_tenants": user_tenants,
            **context,
        },
        status_code=status_code,
    )


def redirect(path: str) -> Redirect:
    """After a form post: see the resulting page (POST-redirect-GET)."""
    return Redirect(path=path, status_code=HTTP_303_SEE_OTHER)


def page_error_handler(request: Request, exc: Exception) -> Response:
    """Errors on portal pages as pages: sign in, not allowed, not found, or what went wrong
    with what to do (the same message the API gives)."""
    if isinstance(exc, SignInRequired):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(f"/sign-in?next={quote(target)}")
    if isinstance(exc, AppError):
        status, code, message = exc.status_code, exc.code, exc.message
        if code == "not_a_member":
            status, message = 404, "no such page"
        if status == 401:
            return redirect("/sign-in")
    elif isinstance(exc, NotFoundException):
        status, code, message = 404, "not_found", "no such page"
    elif isinstance(exc, HTTPException):
        status, code, message = exc.status_code, "http_error", str(exc.detail)
    else:
        request.logger.exception("portal page failed: %r", exc)
        status, code, message = 500, "internal_error", "something went wrong on our side"
    titles = {403: "Not allowed", 404: "Not found", 409: "Not possible now", 429: "Slow down"}
    return render(
        request,
        "error.html",
        status_code=status,
        title=titles.get(status, "Something went wrong"),
        code=code,
        message=message,
    )
