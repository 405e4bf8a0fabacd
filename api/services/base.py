"""What every tenant service shares: the caller, a tenant-scoped transaction, and the project
lookup that answers 404 for another tenant's project as for a missing one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from api.errors import NotFound
from api.security import Principal
from resources.database import Database
from resources.repository import TenantScope
from resources.tables import Project


def get_project(scope: TenantScope, slug: str) -> Project:
    project = scope.project(slug)
    if project is None:
        raise NotFound(f"project {slug!r} not found for this tenant", code="project_not_found")
    return project


class TenantService:
    """A service acting for `principal` in its tenant (guards made sure it has one)."""

    def __init__(self, db: Database, principal: Principal) -> None:
        if principal.tenant_id is None or principal.tenant_slug is None:
            raise ValueError("a tenant service needs a principal acting in a tenant")
        self.db = db
        self.principal = principal
        self.tenant_id: str = principal.tenant_id
        self.tenant_slug: str = principal.tenant_slug

    @property
    def actor(self) -> str:
        return self.principal.actor

    @contextmanager
    def scope(self) -> Iterator[TenantScope]:
        """One transaction over this tenant's rows: committed when the block ends cleanly."""
        with self.db.session() as session:
            yield TenantScope(session, self.tenant_id)
