"""Portal pages of the installation's operators (anyone else gets 404): tenants (suspend,
resume, change plan, create with the first owner's invitation), plans and their limits, and the
approved base models. Each calls the services the /v1/admin API uses (api/services/tenants.py,
plans.py, training.py); every change is audited there."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api import schemas
from api.errors import AppError, BadRequest
from api.portal.pages import flash, page_operator, redirect, render
from api.security import Principal
from api.services.plans import LIMIT_BY_FIELD, PLAN_FIELDS, PlanService
from api.services.tenants import TenantService
from api.services.training import RegistryService
from resources.model_registry import SOURCE_KINDS

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
MODEL_NUMBERS = ("context_length", "parameters", "size_bytes")
MODEL_LISTS = ("allowed_tenants", "allowed_plans")
MODEL_FLAGS = ("is_default", "enabled")


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if isinstance(value, list):
        value = value[-1] if value else ""
    return str(value or "").strip()


def _whole(data: dict[str, Any], name: str) -> int | None:
    """A whole number from the form (blank: None); BadRequest naming the field otherwise."""
    text = _text(data, name).replace("_", "").replace(",", "")
    if not text:
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise BadRequest(f"{name} must be a whole number, or blank", code="invalid_form") from exc


def plan_limits(data: dict[str, Any]) -> dict[str, int | None]:
    """Every limit of the plan form (blank: no limit)."""
    return {field: _whole(data, field) for field in PLAN_FIELDS}


def model_entry(data: dict[str, Any]) -> schemas.BaseModelCreate:
    """The base-model form as the registry's request body (the service checks the rest)."""
    values: dict[str, Any] = {
        name: _text(data, name) for name in ("id", "name", "source_kind", "source", "licence")
    }
    values["chat_template"] = _text(data, "chat_template") or "bundled"
    for name in MODEL_NUMBERS:
        values[name] = _whole(data, name)
    if values["context_length"] is None:
        raise BadRequest("context_length is needed (tokens, at least 128)", code="invalid_form")
    for name in MODEL_LISTS:
        values[name] = [p.strip() for p in _text(data, name).split(",") if p.strip()]
    for name in MODEL_FLAGS:
        values[name] = bool(_text(data, name))
    try:
        return msgspec.convert(values, schemas.BaseModelCreate)
    except msgspec.ValidationError as exc:
        raise BadRequest(str(exc), code="invalid_base_model") from exc


class PortalOperatorController(Controller):
    path = "/operator"
    include_in_schema = False

    # --- tenants -----------------------------------------------------------------------------
    def _tenants_page(
        self,
        request: Request,
        tenants: TenantService,
        plans: PlanService,
        status_code: int = 200,
        error: str | None = None,
        created: Any = None,
        values: dict[str, str] | None = None,
    ) -> Template:
        return render(
            request,
            "operator/tenants.html",
            active="operator",
            section="tenants",
            status_code=status_code,
            tenants=tenants.list(),
            plans=plans.list(),
            error=error,
            created=created,
            values=values or {},
        )

    @get("/tenants", guards=[page_operator], sync_to_thread=True)
    def tenants(self, request: Request, tenants: TenantService, plans: PlanService) -> Template:
        return self._tenants_page(request, tenants, plans)

    @post("/tenants", guards=[page_operator], sync_to_thread=True)
    def create_tenant(
        self,
        request: Request,
        principal: Principal,
        data: Form,
        tenants: TenantService,
        plans: PlanService,
    ) -> Template:
        values = {k: _text(data, k) for k in ("slug", "name", "plan", "owner_email")}
        try:
            created = tenants.create(
                principal,
                values["slug"],
                values["name"] or None,
                values["plan"] or None,
                values["owner_email"] or None,
            )
        except AppError as exc:
            return self._tenants_page(
                request, tenants, plans, exc.status_code, error=exc.message, values=values
            )
        # The first key (and the invitation link, without a mail server) only in this answer.
        page = self._tenants_page(request, tenants, plans, 201, created=created)
        page.headers.update({"Cache-Control": "no-store"})
        return page

    @post("/tenants/{slug:str}/suspend", guards=[page_operator], sync_to_thread=True)
    def suspend(
        self,
        request: Request,
        principal: Principal,
        slug: str,
        data: Form,
        tenants: TenantService,
        plans: PlanService,
    ) -> Template | Redirect:
        try:
            tenants.suspend(slug, _text(data, "reason"), principal.actor)
        except AppError as exc:
            return self._tenants_page(request, tenants, plans, exc.status_code, error=exc.message)
        flash(request, f"Tenant {slug} suspended: its keys and members are refused until resumed.")
        return redirect("/operator/tenants")

    @post("/tenants/{slug:str}/resume", guards=[page_operator], sync_to_thread=True)
    def resume(
        self,
        request: Request,
        principal: Principal,
        slug: str,
        tenants: TenantService,
        plans: PlanService,
    ) -> Template | Redirect:
        try:
            tenants.resume(slug, principal.actor)
        except AppError as exc:
            return self._tenants_page(request, tenants, plans, exc.status_code, error=exc.message)
        flash(request, f"Tenant {slug} resumed.")
        return redirect("/operator/tenants")

    @post("/tenants/{slug:str}/plan", guards=[page_operator], sync_to_thread=True)
    def change_plan(
        self,
        request: Request,
        principal: Principal,
        slug: str,
        data: Form,
        tenants: TenantService,
        plans: PlanService,
    ) -> Template | Redirect:
        try:
            summary = tenants.change_plan(slug, _text(data, "plan"), principal.actor)
        except AppError as exc:
            return self._tenants_page(request, tenants, plans, exc.status_code, error=exc.message)
        flash(request, f"Tenant {slug} is now on the {summary.plan} plan.")
        return redirect("/operator/tenants")

    # --- plans -------------------------------------------------------------------------------
    def _plans_page(
        self,
        request: Request,
        plans: PlanService,
        status_code: int = 200,
        error: str | None = None,
        values: dict[str, str] | None = None,
    ) -> Template:
        return render(
            request,
            "operator/plans.html",
            active="operator",
            section="plans",
            status_code=status_code,
            plans=plans.list(),
            limits=[LIMIT_BY_FIELD[f] for f in PLAN_FIELDS],
            error=error,
            values=values or {},
        )

    @get("/plans", guards=[page_operator], sync_to_thread=True)
    def plans(self, request: Request, plans: PlanService) -> Template:
        return self._plans_page(request, plans)

    @post("/plans", guards=[page_operator], sync_to_thread=True)
    def create_plan(
        self, request: Request, principal: Principal, data: Form, plans: PlanService
    ) -> Template | Redirect:
        values = {k: _text(data, k) for k in ("id", "name", *PLAN_FIELDS)}
        try:
            plan = plans.create(values["id"], values["name"], plan_limits(data), principal.actor)
        except AppError as exc:
            return self._plans_page(
                request, plans, exc.status_code, error=exc.message, values=values
            )
        flash(request, f"Plan {plan.id} created.")
        return redirect("/operator/plans")

    @post("/plans/{plan_id:str}", guards=[page_operator], sync_to_thread=True)
    def update_plan(
        self, request: Request, principal: Principal, plan_id: str, data: Form, plans: PlanService
    ) -> Template | Redirect:
        try:
            plan = plans.update(
                plan_id, _text(data, "name") or None, plan_limits(data), principal.actor
            )
        except AppError as exc:
            return self._plans_page(request, plans, exc.status_code, error=exc.message)
        flash(request, f"Plan {plan.id} saved: its tenants get the new limits at once.")
        return redirect("/operator/plans")

    # --- approved base models ----------------------------------------------------------------
    def _models_page(
        self,
        request: Request,
        registry: RegistryService,
        status_code: int = 200,
        error: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> Template:
        return render(
            request,
            "operator/models.html",
            active="operator",
            section="models",
            status_code=status_code,
            entries=registry.entries(),
            source_kinds=SOURCE_KINDS,
            error=error,
            values=values or {"enabled": True, "chat_template": "bundled"},
        )

    @get("/models", guards=[page_operator], sync_to_thread=True)
    def models(self, request: Request, registry: RegistryService, edit: str = "") -> Template:
        values = None
        for entry, source in registry.entries():
            if entry.id == edit:
                values = {**msgspec.structs.asdict(entry), "source": source, "editing": True}
                for name in MODEL_LISTS:
                    values[name] = ", ".join(values[name])
        return self._models_page(request, registry, values=values)

    @post("/models", guards=[page_operator], sync_to_thread=True)
    def register_model(
        self, request: Request, principal: Principal, data: Form, registry: RegistryService
    ) -> Template | Redirect:
        try:
            entry = registry.register(model_entry(data), principal.actor)
        except AppError as exc:
            values: dict[str, Any] = {k: _text(data, k) for k in data}
            values.update({name: bool(_text(data, name)) for name in MODEL_FLAGS})
            return self._models_page(
                request, registry, exc.status_code, error=exc.message, values=values
            )
        flash(request, f"Base model {entry.id} saved.")
        return redirect("/operator/models")
