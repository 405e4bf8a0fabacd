"""Who is calling, and what they may do.

Every request resolves to at most one `Principal`: an API key (of one tenant, with scopes), a
signed-in user (a portal session; acting in one of their tenants with that membership's role), or
the operator (the operator token, or a user flagged as operator). Guards on each route handler
say what the handler needs (`requires_scope`, `requires_role`, `requires_operator`, `public`);
`assert_every_route_guarded` refuses to build an app with a handler that says nothing, so a new
endpoint cannot ship without a rule.

Roles and scopes are one model: a role grants scopes (`ROLE_SCOPES`); a key carries scopes, and a
key made by a user never carries more than that user's role grants, now or later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.errors import AppError, Forbidden, Unauthorized

ROLES = ("viewer", "member", "admin", "owner")  # ascending
SCOPES = ("read", "write", "train", "deploy", "inference", "admin")
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read", "inference"}),
    "member": frozenset({"read", "inference", "write", "train"}),
    "admin": frozenset(SCOPES),
    "owner": frozenset(SCOPES),
}
# What each scope lets a key (or a role) do, for messages and docs.
SCOPE_MEANING = {
    "read": "read projects, documents, datasets, runs, evaluations and deployments",
    "write": "upload and delete documents, review examples, edit evaluation sets",
    "train": "start, cancel and retry runs",
    "deploy": "activate and roll back deployments, change their runtime",
    "inference": "chat with deployed models and list them",
    "admin": "manage members, API keys, project settings, data rights and the audit trail",
}

PRINCIPAL_SCOPE_KEY = "privatune_principal"
POLICY_OPT_KEY = "policy"


def role_rank(role: str | None) -> int:
    return ROLES.index(role) if role in ROLES else -1


def at_least(role: str | None, needed: str) -> bool:
    return role_rank(role) >= role_rank(needed)


@dataclass(frozen=True)
class Principal:
    """The caller. `tenant_id` is None for the operator token and for a user who has not chosen
    a tenant (or belongs to none)."""

    kind: Literal["api_key", "user", "operator"]
    tenant_id: str | None = None
    tenant_slug: str | None = None
    role: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    user_id: str | None = None
    email: str | None = None
    key_id: str | None = None
    key_prefix: str | None = None
    is_operator: bool = False
    session_id: str | None = None  # set when a portal session authenticated the request
    suspended: str | None = None  # the tenant is suspended: why (its data stays out of reach)

    @property
    def actor(self) -> str:
        """How the audit trail and the logs name the caller (never a secret)."""
        if self.kind == "api_key":
            return f"api_key:{self.key_prefix}"
        if self.kind == "user":
            return f"user:{self.email}"
        return "operator"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def may_grant(self, scopes: set[str] | frozenset[str]) -> bool:
        """Whether this caller can hand out these scopes (to a key it creates)."""
        return set(scopes) <= set(self.scopes)


class TenantRequired(AppError):
    status_code, code = 403, "tenant_required"


# --- resolution --------------------------------------------------------------------------
# The resolver is installed by the app (api/authn.py): it reads the key, the operator token
# or the session, checks it against the database and returns the Principal (or None).
Resolver = Callable[[ASGIConnection], Awaitable["Principal | None"]]


async def principal_of(connection: ASGIConnection) -> Principal | None:
    """The request's principal, resolved once and cached on the connection."""
    scope: dict[str, Any] = connection.scope  # type: ignore[assignment]
    if PRINCIPAL_SCOPE_KEY not in scope:
        resolver: Resolver = connection.app.state["principal_resolver"]
        scope[PRINCIPAL_SCOPE_KEY] = await resolver(connection)
    return scope[PRINCIPAL_SCOPE_KEY]


def unauthenticated() -> Unauthorized:
    return Unauthorized(
        "missing credentials: send `Authorization: Bearer <API key>` (an API key of your tenant) "
        "or sign in to the portal",
        code="missing_api_key",
    )


async def authenticated(connection: ASGIConnection) -> Principal:
    principal = await principal_of(connection)
    if principal is None:
        raise unauthenticated()
    return principal


async def tenant_principal(connection: ASGIConnection) -> Principal:
    principal = await authenticated(connection)
    if principal.suspended is not None:
        raise Forbidden(
            f"tenant {principal.tenant_slug} is suspended ({principal.suspended}); contact the "
            "installation's operator",
            code="tenant_suspended",
        )
    if principal.tenant_id is None:
        if principal.kind == "operator":
            raise Forbidden(
                "the operator token acts on the operator plane (/v1/admin/...); use an API key "
                "or a member's sign-in for a tenant's data",
                code="tenant_required",
            )
        raise TenantRequired(
            "choose a tenant first: send `X-Tenant: <tenant slug>` or POST /v1/auth/tenant "
            "(you are a member of the tenants GET /v1/auth/me lists)",
            code="tenant_required",
        )
    return principal


# --- guards ------------------------------------------------------------------------------
Guard = Callable[[ASGIConnection, BaseRouteHandler], Awaitable[None]]


@dataclass(frozen=True)
class Policy:
    """What a handler needs; kept on the handler (opt["policy"]) so tests and docs can read it."""

    kind: Literal["public", "authenticated", "user", "scope", "role", "operator", "tenant_creation"]
    value: str | None = None

    def describe(self) -> str:
        if self.kind == "scope":
            return f"scope {self.value}"
        if self.kind == "role":
            return f"role {self.value}"
        return self.kind


def _guard(policy: Policy, check: Guard) -> Guard:
    check.policy = policy  # type: ignore[attr-defined]
    return check


def requires_scope(scope: str) -> Guard:
    """The caller acts in a tenant and has `scope` (a key's scope, or one its role grants)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def check(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        principal = await tenant_principal(connection)
        if not principal.has_scope(scope):
            if principal.kind == "api_key":
                raise Forbidden(
                    f"this API key lacks the `{scope}` scope ({SCOPE_MEANING[scope]}); ask an "
                    "admin for a key that has it",
                    code="insufficient_scope",
                    details={"needed_scope": scope, "key_scopes": sorted(principal.scopes)},
                )
            needed = next(r for r in ROLES if scope in ROLE_SCOPES[r])
            raise Forbidden(
                f"your role {principal.role} may not {SCOPE_MEANING[scope]}; it needs the role "
                f"{needed} or higher (ask an owner or admin of {principal.tenant_slug})",
                code="insufficient_role",
                details={"needed_role": needed, "role": principal.role},
            )

    return _guard(Policy("scope", scope), check)


def requires_role(role: str) -> Guard:
    """The caller acts in a tenant with at least `role`. For a key: the role of the user who made
    it (capped by that user's role today), or `owner` for the key tenant creation returned."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    async def check(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        principal = await tenant_principal(connection)
        if not at_least(principal.role, role):
            raise Forbidden(
                f"this needs the role {role} in {principal.tenant_slug}; you act as "
                f"{principal.role or 'no role'}",
                code="insufficient_role",
                details={"needed_role": role, "role": principal.role},
            )

    return _guard(Policy("role", role), check)


async def _operator(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    principal = await authenticated(connection)
    if not principal.is_operator:
        raise Forbidden(
            "this is the operator plane: it needs the operator token (PRIVATUNE_ADMIN_TOKEN) or "
            "a user flagged as operator",
            code="operator_required",
        )


requires_operator: Guard = _guard(Policy("operator"), _operator)


async def _signed_in(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    await authenticated(connection)


requires_authentication: Guard = _guard(Policy("authenticated"), _signed_in)


async def _user(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    principal = await authenticated(connection)
    if principal.kind != "user":
        raise Forbidden(
            "this acts on a person's own account: sign in to the portal (an API key or the "
            "operator token cannot)",
            code="user_required",
        )


requires_user: Guard = _guard(Policy("user"), _user)


async def _tenant_creation(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """The one policy for creating a tenant: operators always; anyone else only where the
    installation enables open sign-up."""
    from resources.settings import get_settings

    principal = await principal_of(connection)
    if principal is not None and principal.is_operator:
        return
    if get_settings().open_signup:
        return
    if principal is None:
        raise Unauthorized(
            "creating a tenant needs the operator token (Authorization: Bearer "
            "$PRIVATUNE_ADMIN_TOKEN); this installation has no open sign-up",
            code="operator_required",
        )
    raise Forbidden(
        "creating a tenant is for operators on this installation (no open sign-up)",
        code="operator_required",
    )


requires_tenant_creation: Guard = _guard(Policy("tenant_creation"), _tenant_creation)


async def _public(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    return None


public: Guard = _guard(Policy("public"), _public)


def policy_of(handler: BaseRouteHandler) -> Policy | None:
    """The policy the handler's own (or inherited) guards declare; None when there is none."""
    policies = [getattr(g, "policy", None) for g in handler.resolve_guards()]
    found = [p for p in policies if p is not None]
    return found[-1] if found else None


def assert_every_route_guarded(route_handlers: list[BaseRouteHandler]) -> None:
    """Refuse to start with a handler that declares no policy (static files and the schema
    pages excepted by the caller)."""
    missing = [
        f"{sorted(getattr(h, 'http_methods', []))} {h.paths}"
        for h in route_handlers
        if policy_of(h) is None
    ]
    if missing:
        raise RuntimeError(
            "route handlers without an access policy (add requires_scope/requires_role/"
            f"requires_operator/public to their guards): {', '.join(missing)}"
        )
