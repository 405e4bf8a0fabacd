"""Tenant creation (the operator, or anyone where open sign-up is on) and the operator plane:
tenants, plans, people, the base-model registry."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, patch, post

from api import schemas
from api.schemas import INT64_MAX, checked_parameter
from api.security import Principal, requires_operator, requires_tenant_creation
from api.services import plans as plan_rules
from api.services.accounts import AccountService
from api.services.plans import PlanService
from api.services.tenants import TenantService
from api.services.training import list_registry, register_model
from resources.database import Database


class TenantController(Controller):
    path = "/v1/tenants"
    tags = ["auth"]

    @post(
        "/",
        operation_id="createTenant",
        sync_to_thread=True,
        status_code=201,
        guards=[requires_tenant_creation],
    )
    def create(
        self, data: schemas.TenantCreate, caller: Principal | None, tenants: TenantService
    ) -> schemas.TenantCreated:
        """Create a tenant and its first API key (owner role, every scope; shown once). Needs the
        operator token (or an operator's sign-in), unless the installation enables open
        sign-up. An operator may choose the plan and invite the first owner by e-mail."""
        created = tenants.create(caller, data.slug, data.name, data.plan, data.owner_email)
        return schemas.TenantCreated(
            tenant=created.tenant,
            api_key=created.api_key,
            invitation=created.invitation,
            invitation_error=created.invitation_error,
        )


class AdminTenantController(Controller):
    path = "/v1/admin/tenants"
    tags = ["admin"]
    guards = [requires_operator]

    @get("/", operation_id="listTenants", sync_to_thread=True)
    def list(self, tenants: TenantService) -> list[schemas.TenantSummary]:
        """Every tenant with its plan, status and counts."""
        return tenants.list()

    @get("/{slug:str}", operation_id="getTenant", sync_to_thread=True)
    def get(self, slug: str, tenants: TenantService) -> schemas.TenantSummary:
        return tenants.get(slug)

    @post("/{slug:str}/suspend", operation_id="suspendTenant", sync_to_thread=True, status_code=200)
    def suspend(
        self,
        slug: str,
        data: schemas.TenantSuspend,
        principal: Principal,
        tenants: TenantService,
    ) -> schemas.TenantSummary:
        """Refuse the tenant's keys and members (403 tenant_suspended, with the reason) until
        resumed; nothing is deleted. Audited."""
        return tenants.suspend(slug, data.reason, principal.actor)

    @post("/{slug:str}/resume", operation_id="resumeTenant", sync_to_thread=True, status_code=200)
    def resume(
        self, slug: str, principal: Principal, tenants: TenantService
    ) -> schemas.TenantSummary:
        return tenants.resume(slug, principal.actor)

    @post("/{slug:str}/plan", operation_id="changeTenantPlan", sync_to_thread=True, status_code=200)
    def change_plan(
        self,
        slug: str,
        data: schemas.TenantPlanChange,
        principal: Principal,
        tenants: TenantService,
    ) -> schemas.TenantSummary:
        """Move the tenant to another plan (its limits apply from the next request). Audited."""
        return tenants.change_plan(slug, data.plan, principal.actor)


class AdminPlanController(Controller):
    path = "/v1/admin/plans"
    tags = ["admin"]
    guards = [requires_operator]

    @get("/", operation_id="listPlans", sync_to_thread=True)
    def list(self, plans: PlanService) -> list[schemas.Plan]:
        return plans.list()

    @post("/", operation_id="createPlan", sync_to_thread=True, status_code=201)
    def create(
        self, data: schemas.PlanCreate, principal: Principal, plans: PlanService
    ) -> schemas.Plan:
        """A new plan; a limit left out (or null) is no limit. Audited."""
        limits = {f: getattr(data, f) for f in plan_rules.PLAN_FIELDS}
        return plans.create(data.id, data.name, limits, principal.actor)

    @patch("/{plan_id:str}", operation_id="updatePlan", sync_to_thread=True)
    def update(
        self, plan_id: str, data: schemas.PlanUpdate, principal: Principal, plans: PlanService
    ) -> schemas.Plan:
        """Change a plan's name or limits (only the fields given; null removes a limit).
        Every tenant on the plan gets the new limits at its next request. Audited."""
        given = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        name = given.pop("name", None)
        return plans.update(plan_id, name, given, principal.actor)


class AdminUserController(Controller):
    path = "/v1/admin/users"
    tags = ["admin"]
    guards = [requires_operator]

    @get("/", operation_id="listUsers", sync_to_thread=True)
    def list_users(
        self,
        accounts: AccountService,
        limit: int = 100,
        offset: Annotated[int, checked_parameter(maximum=INT64_MAX)] = 0,
    ) -> list[schemas.User]:
        return accounts.list_users(min(max(limit, 1), 500), max(offset, 0))

    @post("/import", operation_id="importUsers", sync_to_thread=True, status_code=201)
    def import_users(
        self, data: schemas.UserImport, principal: Principal, accounts: AccountService
    ) -> list[schemas.User]:
        """Import people from the product we replace with their existing password hashes
        (PBKDF2-SHA256 in Django, passlib or Werkzeug format, or bcrypt); each signs in with
        the old password and the hash becomes argon2id then. All or nothing. Audited."""
        entries = [msgspec.structs.asdict(u) for u in data.users]
        return accounts.import_users(entries, principal.actor)

    @patch("/{user_id:str}", operation_id="updateUser", sync_to_thread=True)
    def update(
        self,
        user_id: str,
        data: schemas.UserUpdate,
        principal: Principal,
        accounts: AccountService,
    ) -> schemas.User:
        """Flag a person as operator, or disable (their sessions end) / enable them. Audited."""
        return accounts.update_user(user_id, principal.actor, data.is_operator, data.disabled)

    @post(
        "/{user_id:str}/password-reset",
        operation_id="issuePasswordReset",
        sync_to_thread=True,
        status_code=200,
    )
    def reset_link(
        self, user_id: str, principal: Principal, accounts: AccountService
    ) -> schemas.ResetLink:
        """A single-use reset link for the person: mailed when a mail server is configured,
        otherwise returned here (to you, the operator) to hand over."""
        return schemas.ResetLink(**accounts.operator_reset_link(user_id, principal.actor))


class AdminBaseModelController(Controller):
    path = "/v1/admin/base-models"
    tags = ["admin"]
    guards = [requires_operator]

    @get("/", operation_id="listRegistry", sync_to_thread=True)
    def list(self, db: Database) -> list[schemas.BaseModelInfo]:
        """Every entry of the approved base-model registry."""
        with db.session() as session:
            return list_registry(session)

    @post("/", operation_id="registerBaseModel", sync_to_thread=True, status_code=201)
    def register(
        self, data: schemas.BaseModelCreate, principal: Principal, db: Database
    ) -> schemas.BaseModelInfo:
        """Add or update an approved base model. Audited."""
        with db.session() as session:
            return register_model(session, data, principal.actor)
