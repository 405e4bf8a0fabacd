"""What a training run needs before it may start: the tenant's confirmation that it holds the
rights to train on a project's documents, and the approved base models (registry)."""

from __future__ import annotations

import hmac

from litestar import Controller, Request, get, post, put

from api import schemas
from api.auth import Principal, bearer_token
from api.controllers.projects import get_project
from api.errors import BadRequest, Forbidden
from resources.database import Database
from resources.model_registry import ModelEntry, describe, models_for, register
from resources.repository import TenantScope
from resources.settings import get_settings
from resources.tables import AuditEvent, Project, Tenant, utcnow


def rights(project: Project) -> schemas.DataRights:
    return schemas.DataRights(
        confirmed=project.rights_confirmed_at is not None,
        confirmed_by=project.rights_confirmed_by,
        confirmed_at=project.rights_confirmed_at,
        statement=project.rights_statement,
    )


class DataRightsController(Controller):
    path = "/v1/projects/{project:str}/data-rights"
    tags = ["training"]

    @get("/", operation_id="getDataRights", sync_to_thread=True)
    def show(self, project: str, principal: Principal, db: Database) -> schemas.DataRights:
        """Whether the tenant has confirmed it may train on this project's documents."""
        with db.session() as session:
            return rights(get_project(TenantScope(session, principal.tenant_id), project))

    @put("/", operation_id="confirmDataRights", sync_to_thread=True)
    def confirm(
        self,
        project: str,
        principal: Principal,
        db: Database,
        data: schemas.DataRightsConfirm,
    ) -> schemas.DataRights:
        """Confirm, in a named person's name, that the tenant holds the rights to use the
        project's documents for training. Recorded with the time and audited."""
        name = data.confirmed_by.strip()
        if not 1 <= len(name) <= 200:
            raise BadRequest(
                "confirmed_by must name the person confirming (1 to 200 characters)",
                code="invalid_data_rights",
            )
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            row.rights_confirmed_by = name
            row.rights_confirmed_at = utcnow()
            row.rights_statement = (data.statement or "").strip() or None
            scope.audit(
                principal.actor,
                "data_rights.confirmed",
                row.slug,
                {"confirmed_by": name, "statement": row.rights_statement},
            )
            session.flush()
            return rights(row)


class BaseModelController(Controller):
    path = "/v1/base-models"
    tags = ["training"]

    @get("/", operation_id="listBaseModels", sync_to_thread=True)
    def list(self, principal: Principal, db: Database) -> list[schemas.BaseModelInfo]:
        """The approved base models this tenant may fine-tune."""
        with db.session() as session:
            tenant = session.get(Tenant, principal.tenant_id)
            assert tenant is not None
            return [schemas.BaseModelInfo(**describe(m)) for m in models_for(session, tenant)]


class AdminBaseModelController(Controller):
    path = "/v1/admin/base-models"
    tags = ["admin"]

    @post("/", operation_id="registerBaseModel", sync_to_thread=True, status_code=201)
    def register(
        self, request: Request, db: Database, data: schemas.BaseModelCreate
    ) -> schemas.BaseModelInfo:
        """Add or update an approved base model (needs the admin token)."""
        admin = get_settings().admin_token
        if not admin or not hmac.compare_digest(bearer_token(request) or "", admin):
            raise Forbidden(
                "managing the model registry needs the admin token (PRIVATUNE_ADMIN_TOKEN)",
                code="admin_required",
            )
        try:
            entry = ModelEntry(**{f: getattr(data, f) for f in data.__struct_fields__}).validate()
        except ValueError as exc:
            raise BadRequest(str(exc), code="invalid_base_model") from exc
        with db.session() as session:
            row = register(session, entry)
            session.add(
                AuditEvent(
                    tenant_id=None,
                    actor="admin",
                    action="base_model.registered",
                    target=row.id,
                    data=describe(row),
                )
            )
            return schemas.BaseModelInfo(**describe(row))
