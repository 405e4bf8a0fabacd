"""Plans and quotas: what a tenant's plan allows, what it uses, and the checks that refuse a
request that would go over (413 for what cannot be stored or run at that size, 429 with
Retry-After for rates and concurrency). Every check runs with the tenant row locked
(`TenantScope.lock_tenant`) in the same transaction that then writes, so two requests at once
cannot both take the last unit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api import schemas
from api.errors import AppError, BadRequest, Conflict, NotFound, QuotaExceeded, TooManyRequests
from api.services.base import TenantService
from resources import audit
from resources.database import Database, insert_if_missing
from resources.object_store import validate_slug
from resources.repository import TenantScope
from resources.run_states import ACTIVE
from resources.tables import Document, Plan, RateWindow, Run, Tenant, utcnow


@dataclass(frozen=True)
class Limit:
    field: str  # the Plan column
    code: str  # the error code when it is exceeded
    unit: str
    status: int  # 413 | 429
    meaning: str


LIMITS: tuple[Limit, ...] = (
    Limit("max_documents", "documents_quota_exceeded", "documents", 413, "documents stored"),
    Limit("max_storage_bytes", "storage_quota_exceeded", "bytes", 413, "bytes of uploads stored"),
    Limit(
        "max_runs_per_month", "monthly_runs_quota_exceeded", "runs", 429, "runs this calendar month"
    ),
    Limit(
        "max_concurrent_runs",
        "concurrent_runs_quota_exceeded",
        "runs",
        429,
        "runs at the same time",
    ),
    Limit("max_train_steps", "train_steps_quota_exceeded", "steps", 413, "training steps in a run"),
    Limit(
        "chat_requests_per_minute",
        "chat_rate_limited",
        "requests",
        429,
        "chat requests a minute",
    ),
)
LIMIT_BY_FIELD = {limit.field: limit for limit in LIMITS}
PLAN_FIELDS = tuple(limit.field for limit in LIMITS)
# What a tenant meets at each limit (the checks below), in the words the usage page shows.
AT_THE_LIMIT = {
    "max_documents": "Uploads that would go over are refused (413) until documents are deleted.",
    "max_storage_bytes": "Uploads that would go over are refused (413) until documents are "
    "deleted.",
    "max_runs_per_month": "New runs are refused (429) until the next calendar month (UTC); "
    "retries of a run still start.",
    "max_concurrent_runs": "A new run is refused (429) until one of the running ones finishes.",
    "max_train_steps": "A run asking for more steps is refused (413) before it starts.",
    "chat_requests_per_minute": "Further chat requests are refused (429) until the next minute.",
}
# The largest value each limit's column holds (integer, or bigint for the byte and document counts).
LIMIT_MAX = {field: 2**31 - 1 for field in PLAN_FIELDS} | {
    "max_documents": 2**63 - 1,
    "max_storage_bytes": 2**63 - 1,
}


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def exceeded(
    limit: Limit,
    allowed: int,
    used: int,
    requested: int,
    plan: str,
    advice: str,
    retry_after_s: int | None = None,
) -> AppError:
    """The refusal for one limit: the code names it; details carry the figures."""
    message = (
        f"the {plan} plan allows {allowed} {limit.meaning}; {used} used and this request needs "
        f"{requested} more. {advice}"
    )
    details = {
        "limit": limit.field,
        "allowed": allowed,
        "used": used,
        "requested": requested,
        "plan": plan,
    }
    if limit.status == 429:
        headers = {"Retry-After": str(max(1, retry_after_s or 60))}
        return TooManyRequests(message, code=limit.code, details=details, headers=headers)
    return QuotaExceeded(message, code=limit.code, details=details)


class Quotas:
    """The quota checks of one tenant, inside the caller's transaction."""

    def __init__(self, scope: TenantScope) -> None:
        self.scope = scope
        self.session: Session = scope.session

    def lock(self) -> tuple[Tenant, Plan]:
        tenant = self.scope.lock_tenant()
        return tenant, self._plan_of(tenant)

    def plan(self) -> Plan:
        tenant = self.session.get(Tenant, self.scope.tenant_id)
        assert tenant is not None
        return self._plan_of(tenant)

    def _plan_of(self, tenant: Tenant) -> Plan:
        plan = self.session.get(Plan, tenant.plan)
        if plan is None:
            raise RuntimeError(f"tenant {tenant.slug} is on unknown plan {tenant.plan!r}")
        return plan

    # usage
    def documents(self) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(Document)
                .where(Document.tenant_id == self.scope.tenant_id)
            )
            or 0
        )

    def runs_this_month(self, now: datetime) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(Run)
                .where(Run.tenant_id == self.scope.tenant_id, Run.created_at >= month_start(now))
            )
            or 0
        )

    def active_runs(self) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(Run)
                .where(Run.tenant_id == self.scope.tenant_id, Run.status.in_(ACTIVE))
            )
            or 0
        )

    def chat_requests_this_minute(self, now: datetime) -> int:
        row = self.session.get(RateWindow, f"chat:{self.scope.tenant_id}")
        if row is None or _naive(row.window_start) != _naive(_minute(now)):
            return 0
        return row.count

    def usage(self) -> dict[str, int]:
        now = utcnow()
        return {
            "max_documents": self.documents(),
            "max_storage_bytes": self.scope.stored_bytes(),
            "max_runs_per_month": self.runs_this_month(now),
            "max_concurrent_runs": self.active_runs(),
            "max_train_steps": 0,  # a per-run limit: nothing is "used"
            "chat_requests_per_minute": self.chat_requests_this_minute(now),
        }

    # checks
    def check_upload(self, new_documents: int, new_bytes: int) -> None:
        """Locks the tenant, then refuses documents or bytes over the plan."""
        _, plan = self.lock()
        if new_documents == 0:
            return
        if plan.max_documents is not None:
            used = self.documents()
            if used + new_documents > plan.max_documents:
                raise exceeded(
                    LIMIT_BY_FIELD["max_documents"],
                    plan.max_documents,
                    used,
                    new_documents,
                    plan.id,
                    "Delete documents you no longer need or ask the operator for a larger plan.",
                )
        if plan.max_storage_bytes is not None:
            used = self.scope.stored_bytes()
            if used + new_bytes > plan.max_storage_bytes:
                raise exceeded(
                    LIMIT_BY_FIELD["max_storage_bytes"],
                    plan.max_storage_bytes,
                    used,
                    new_bytes,
                    plan.id,
                    "Delete documents or ask the operator for a larger plan (storage quota).",
                )

    def check_run(self, train_steps: int | None, new_run: bool = True) -> None:
        """Locks the tenant, then refuses a run over the monthly, concurrent or step limits
        (a retry is not a new run of the month). The caller refreshes active runs' statuses
        first so finished ones do not count."""
        _, plan = self.lock()
        now = utcnow()
        steps_allowed = plan.max_train_steps
        if steps_allowed is not None and train_steps is not None and train_steps > steps_allowed:
            raise exceeded(
                LIMIT_BY_FIELD["max_train_steps"],
                steps_allowed,
                0,
                train_steps,
                plan.id,
                f"Ask for at most {steps_allowed} steps (train_steps or hyperparameters.max_steps).",
            )
        if plan.max_runs_per_month is not None and new_run:
            used = self.runs_this_month(now)
            if used + 1 > plan.max_runs_per_month:
                raise exceeded(
                    LIMIT_BY_FIELD["max_runs_per_month"],
                    plan.max_runs_per_month,
                    used,
                    1,
                    plan.id,
                    "Runs are counted per calendar month (UTC); try again next month or ask the "
                    "operator for a larger plan.",
                    retry_after_s=int((next_month(now) - now).total_seconds()),
                )
        if plan.max_concurrent_runs is not None:
            used = self.active_runs()
            if used + 1 > plan.max_concurrent_runs:
                raise exceeded(
                    LIMIT_BY_FIELD["max_concurrent_runs"],
                    plan.max_concurrent_runs,
                    used,
                    1,
                    plan.id,
                    "Wait for a run to finish (or cancel one), then try again.",
                    retry_after_s=60,
                )

    def take_chat_request(self) -> None:
        """Counts one chat request in this minute's window, or refuses it (429). Only the
        window's row is locked (not the tenant: a long upload must not hold up chat)."""
        plan = self.plan()
        if plan.chat_requests_per_minute is None:
            return
        now = utcnow()
        key = f"chat:{self.scope.tenant_id}"
        insert_if_missing(self.session, RateWindow, key=key, window_start=_minute(now), count=0)
        row = self.session.scalar(select(RateWindow).where(RateWindow.key == key).with_for_update())
        assert row is not None
        if _naive(row.window_start) != _naive(_minute(now)):
            row.window_start, row.count = _minute(now), 0
        if row.count + 1 > plan.chat_requests_per_minute:
            raise exceeded(
                LIMIT_BY_FIELD["chat_requests_per_minute"],
                plan.chat_requests_per_minute,
                row.count,
                1,
                plan.id,
                "Slow down: the window starts again at the next minute.",
                retry_after_s=60 - now.second,
            )
        row.count += 1
        self.session.flush()


def _minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0)


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None) if value.tzinfo is not None else value


# --- operator plane: the plans themselves ------------------------------------------------


def plan_view(plan: Plan) -> schemas.Plan:
    return schemas.Plan(
        id=plan.id,
        name=plan.name,
        created_at=plan.created_at,
        updated_at=plan.updated_at,
        **{field: getattr(plan, field) for field in PLAN_FIELDS},
    )


def validate_limits(values: dict[str, Any]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for field, value in values.items():
        if field not in LIMIT_BY_FIELD:
            raise BadRequest(f"unknown plan limit {field!r}", code="invalid_plan")
        if value is not None and (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value <= LIMIT_MAX[field]
        ):
            raise BadRequest(
                f"{field} must be a whole number from 0 to {LIMIT_MAX[field]}, or null for no "
                "limit",
                code="invalid_plan",
            )
        out[field] = value
    return out


def list_plans(session: Session) -> Sequence[Plan]:
    return session.scalars(select(Plan).order_by(Plan.id)).all()


def get_plan(session: Session, plan_id: str) -> Plan:
    plan = session.get(Plan, plan_id)
    if plan is None:
        raise NotFound(
            f"no plan {plan_id!r}; GET /v1/admin/plans lists them", code="plan_not_found"
        )
    return plan


def create_plan(session: Session, plan_id: str, name: str, limits: dict[str, Any]) -> Plan:
    if session.get(Plan, plan_id) is not None:
        raise Conflict(f"plan {plan_id!r} already exists; PATCH it instead", code="plan_exists")
    plan = Plan(id=plan_id, name=name, **validate_limits(limits))
    session.add(plan)
    session.flush()
    return plan


def update_plan(session: Session, plan: Plan, name: str | None, limits: dict[str, Any]) -> None:
    if name is not None:
        plan.name = name
    for field, value in validate_limits(limits).items():
        setattr(plan, field, value)
    session.flush()


def plan_id_or_400(raw: str) -> str:
    try:
        return validate_slug(raw, "plan")
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_plan") from exc


class PlanService:
    """The operator's plans: listed, created and changed, each change audited on the platform
    chain (the same rules as /v1/admin/plans)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def list(self) -> list[schemas.Plan]:
        with self.db.session() as session:
            return [plan_view(p) for p in list_plans(session)]

    def create(self, plan_id: str, name: str, limits: dict[str, Any], actor: str) -> schemas.Plan:
        """A new plan; a limit left out (or None) is no limit."""
        name = " ".join(name.split())
        if not 1 <= len(name) <= 200:
            raise BadRequest("name the plan (1 to 200 characters)", code="invalid_plan")
        with self.db.session() as session:
            plan = create_plan(session, plan_id_or_400(plan_id), name, limits)
            audit.append(session, None, actor, "plan.created", plan.id, limits)
            return plan_view(plan)

    def update(
        self, plan_id: str, name: str | None, limits: dict[str, Any], actor: str
    ) -> schemas.Plan:
        """The given limits replace the plan's (None: no limit); the tenants on the plan get
        them at their next request."""
        with self.db.session() as session:
            plan = get_plan(session, plan_id)
            update_plan(session, plan, name, limits)
            audit.append(
                session,
                None,
                actor,
                "plan.updated",
                plan.id,
                {**limits, **({"name": name} if name else {})},
            )
            return plan_view(plan)


def usage_report(scope: TenantScope) -> schemas.Usage:
    """The tenant's plan and, per limit, what is allowed and used."""
    tenant = scope.session.get(Tenant, scope.tenant_id)
    assert tenant is not None
    plan = scope.session.get(Plan, tenant.plan)
    assert plan is not None
    used = Quotas(scope).usage()
    limits = []
    for limit in LIMITS:
        allowed = getattr(plan, limit.field)
        per_run = limit.field == "max_train_steps"
        remaining = None
        if allowed is not None:
            remaining = allowed if per_run else max(0, allowed - used[limit.field])
        limits.append(
            schemas.UsageLimit(
                limit=limit.field,
                meaning=limit.meaning,
                unit=limit.unit,
                allowed=allowed,
                used=used[limit.field],
                remaining=remaining,
                percent=None
                if not allowed or per_run
                else round(100 * used[limit.field] / allowed, 1),
            )
        )
    return schemas.Usage(plan=plan.id, plan_name=plan.name, limits=limits)


class UsageService(TenantService):
    def report(self) -> schemas.Usage:
        with self.scope() as scope:
            return usage_report(scope)
