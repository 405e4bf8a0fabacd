"""What a training run needs before it may start: the tenant's confirmation that it holds the
rights to train on a project's documents, and the approved base models (the registry, which
operators manage)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api import schemas
from api.errors import BadRequest
from api.services.base import TenantService, get_project
from resources import audit
from resources.database import Database
from resources.model_registry import ModelEntry, all_models, describe, models_for, register
from resources.tables import Project, Tenant, utcnow


def rights(project: Project) -> schemas.DataRights:
    return schemas.DataRights(
        confirmed=project.rights_confirmed_at is not None,
        confirmed_by=project.rights_confirmed_by,
        confirmed_at=project.rights_confirmed_at,
        statement=project.rights_statement,
    )


class DataRightsService(TenantService):
    def get(self, project: str) -> schemas.DataRights:
        with self.scope() as scope:
            return rights(get_project(scope, project))

    def confirm(self, project: str, confirmed_by: str, statement: str | None) -> schemas.DataRights:
        """Recorded in a named person's name, with the time; audited."""
        name = confirmed_by.strip()
        if not 1 <= len(name) <= 200:
            raise BadRequest(
                "confirmed_by must name the person confirming (1 to 200 characters)",
                code="invalid_data_rights",
            )
        with self.scope() as scope:
            row = get_project(scope, project)
            row.rights_confirmed_by = name
            row.rights_confirmed_at = utcnow()
            row.rights_statement = (statement or "").strip() or None
            scope.audit(
                self.actor,
                "data_rights.confirmed",
                row.slug,
                {"confirmed_by": name, "statement": row.rights_statement},
            )
            scope.session.flush()
            return rights(row)


class BaseModelService(TenantService):
    def list(self) -> list[schemas.BaseModelInfo]:
        with self.scope() as scope:
            tenant = scope.session.get(Tenant, self.tenant_id)
            assert tenant is not None
            return [schemas.BaseModelInfo(**describe(m)) for m in models_for(scope.session, tenant)]


def list_registry(session: Session) -> list[schemas.BaseModelInfo]:
    """Every entry of the registry, for operators."""
    return [schemas.BaseModelInfo(**describe(m)) for m in all_models(session)]


def register_model(
    session: Session, data: schemas.BaseModelCreate, actor: str
) -> schemas.BaseModelInfo:
    try:
        entry = ModelEntry(**{f: getattr(data, f) for f in data.__struct_fields__}).validate()
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_base_model") from exc
    row = register(session, entry)
    audit.append(session, None, actor, "base_model.registered", row.id, describe(row))
    return schemas.BaseModelInfo(**describe(row))


class RegistryService:
    """The approved base-model registry, for operators: every entry with where its weights
    come from, and adding or changing one (audited on the platform chain)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def entries(self) -> list[tuple[schemas.BaseModelInfo, str]]:
        """(entry, source) per model: the source fills the operator's edit form."""
        with self.db.session() as session:
            return [(schemas.BaseModelInfo(**describe(m)), m.source) for m in all_models(session)]

    def register(self, data: schemas.BaseModelCreate, actor: str) -> schemas.BaseModelInfo:
        """Adds the model, or updates the entry with the same id."""
        with self.db.session() as session:
            return register_model(session, data, actor)
