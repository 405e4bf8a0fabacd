"""Per-request dependencies: the caller (resolved by the guards) and the services, each built
for this request's caller. Controllers name what they need; Litestar provides it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.di import Provide

from api.security import PRINCIPAL_SCOPE_KEY, Principal, principal_of, unauthenticated
from api.services.accounts import AccountService
from api.services.audit import AuditService
from api.services.datasets import DatasetService, ReviewService
from api.services.deployments import DeploymentService, EvaluationService
from api.services.documents import DocumentService
from api.services.evaluation_sets import EvaluationSetService
from api.services.keys import KeyService
from api.services.members import InvitationService, MemberService
from api.services.plans import PlanService, UsageService
from api.services.projects import ProjectOverviewService, ProjectService
from api.services.runs import RunService
from api.services.tenants import TenantService
from api.services.training import BaseModelService, DataRightsService, RegistryService
from resources.database import Database
from resources.object_store import ObjectStore
from resources.orchestrator import DagsterOrchestrator


def provide_principal(request: Request) -> Principal:
    """The caller the guards resolved (every handler that asks for one has a guard)."""
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)  # type: ignore[call-overload]
    if not isinstance(principal, Principal):
        raise unauthenticated()
    return principal


async def provide_optional_principal(request: Request) -> Principal | None:
    """The caller, if the request carries credentials (public handlers that behave
    differently for a signed-in person)."""
    return await principal_of(request)


def _projects(
    db: Database, principal: Principal, orchestrator: DagsterOrchestrator
) -> ProjectService:
    return ProjectService(db, principal, orchestrator)


def _documents(db: Database, principal: Principal, store: ObjectStore) -> DocumentService:
    return DocumentService(db, principal, store)


def _runs(
    db: Database, principal: Principal, orchestrator: DagsterOrchestrator, store: ObjectStore
) -> RunService:
    return RunService(db, principal, orchestrator, store)


def _datasets(db: Database, principal: Principal, store: ObjectStore) -> DatasetService:
    return DatasetService(db, principal, store)


def _reviews(db: Database, principal: Principal) -> ReviewService:
    return ReviewService(db, principal)


def _deployments(db: Database, principal: Principal, store: ObjectStore) -> DeploymentService:
    return DeploymentService(db, principal, store)


def _evaluations(db: Database, principal: Principal, store: ObjectStore) -> EvaluationService:
    return EvaluationService(db, principal, store)


def _evaluation_sets(db: Database, principal: Principal) -> EvaluationSetService:
    assert principal.tenant_id is not None
    return EvaluationSetService(db, principal.tenant_id, principal.actor)


def _data_rights(db: Database, principal: Principal) -> DataRightsService:
    return DataRightsService(db, principal)


def _base_models(db: Database, principal: Principal) -> BaseModelService:
    return BaseModelService(db, principal)


def _members(db: Database, principal: Principal) -> MemberService:
    return MemberService(db, principal)


def _keys(db: Database, principal: Principal) -> KeyService:
    return KeyService(db, principal)


def _usage(db: Database, principal: Principal) -> UsageService:
    return UsageService(db, principal)


def _audit_trail(db: Database, principal: Principal) -> AuditService:
    return AuditService(db, principal.tenant_id)


def _accounts(db: Database) -> AccountService:
    return AccountService(db)


def _invitations(db: Database) -> InvitationService:
    return InvitationService(db)


def _overview(db: Database, principal: Principal) -> ProjectOverviewService:
    return ProjectOverviewService(db, principal)


def _tenants(db: Database) -> TenantService:
    return TenantService(db)


def _plans(db: Database) -> PlanService:
    return PlanService(db)


def _registry(db: Database) -> RegistryService:
    return RegistryService(db)


FACTORIES: dict[str, Callable[..., Any]] = {
    "principal": provide_principal,
    "projects": _projects,
    "documents": _documents,
    "runs": _runs,
    "datasets": _datasets,
    "reviews": _reviews,
    "deployments": _deployments,
    "evaluations": _evaluations,
    "evaluation_sets": _evaluation_sets,
    "data_rights": _data_rights,
    "base_models": _base_models,
    "members": _members,
    "keys": _keys,
    "usage": _usage,
    "audit_trail": _audit_trail,
    "accounts": _accounts,
    "invitations": _invitations,
    "tenants": _tenants,
    "overview": _overview,
    "plans": _plans,
    "registry": _registry,
}
# Constructors only (cheap, no I/O): no thread needed.
DEPENDENCIES: dict[str, Provide] = {
    name: Provide(factory, sync_to_thread=False) for name, factory in FACTORIES.items()
} | {"caller": Provide(provide_optional_principal)}
