"""Documents: upload (ZIP archives unpacked), list, detail with extraction and PII summary, delete."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, delete, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body

from api import schemas, views
from api.auth import Principal
from api.controllers.projects import get_project
from api.errors import BadRequest, NotFound
from api.uploads import expand, store_uploads
from resources.database import Database
from resources.object_store import ObjectNotFound, ObjectStore, ProjectStore
from resources.repository import TenantScope
from resources.settings import get_settings
from resources.tables import Document


class DocumentController(Controller):
    path = "/v1/projects/{project:str}/documents"
    tags = ["documents"]

    @post("/", operation_id="uploadDocuments", sync_to_thread=True, status_code=201)
    def upload(
        self,
        project: str,
        data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
        principal: Principal,
        db: Database,
        store: ObjectStore,
    ) -> schemas.UploadResult:
        """Upload files (multipart, any field names; ZIP archives are unpacked). The same content twice is stored once."""
        files = [
            f
            for value in data.values()
            for f in (value if isinstance(value, list) else [value])
            if isinstance(f, UploadFile)
        ]
        if not files:
            raise BadRequest(
                "no file in the request: send multipart/form-data with one or more file fields",
                code="no_files",
            )
        settings = get_settings()
        incoming = expand(files, settings)
        try:
            with db.session() as session:
                scope = TenantScope(session, principal.tenant_id)
                row = get_project(scope, project)
                pstore = ProjectStore(store, principal.tenant_slug, row.slug)
                documents, created = store_uploads(
                    scope, row, pstore, incoming, principal.actor, settings.storage_quota_bytes
                )
                return schemas.UploadResult(
                    documents=[views.document(d) for d in documents],
                    created=created,
                    already_present=len(documents) - created,
                )
        finally:
            for item in incoming:
                item.file.close()

    @get("/", operation_id="listDocuments", sync_to_thread=True)
    def list(self, project: str, principal: Principal, db: Database) -> list[schemas.Document]:
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            return [views.document(d) for d in scope.documents(get_project(scope, project).id)]

    @get("/{document_id:str}", operation_id="getDocument", sync_to_thread=True)
    def get(
        self, project: str, document_id: str, principal: Principal, db: Database, store: ObjectStore
    ) -> schemas.DocumentDetail:
        """Metadata, per-page extraction method, PII summary and a redacted text preview."""
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            doc = _document(scope, project, document_id)
            pstore = ProjectStore(store, principal.tenant_slug, project)
            return views.document_detail(
                doc,
                _artifact(pstore, f"normalized/{doc.sha256}.json"),
                _artifact(pstore, f"screened/{doc.sha256}.json"),
            )

    @delete(
        "/{document_id:str}", operation_id="deleteDocument", sync_to_thread=True, status_code=204
    )
    def remove(
        self, project: str, document_id: str, principal: Principal, db: Database, store: ObjectStore
    ) -> None:
        """Delete the document from the database and the object store (audited)."""
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            doc = _document(scope, project, document_id)
            pstore = ProjectStore(store, principal.tenant_slug, project)
            for key in (
                f"raw/{doc.sha256}",
                f"normalized/{doc.sha256}.json",
                f"screened/{doc.sha256}.json",
            ):
                pstore.delete(key)
            scope.audit(
                principal.actor,
                "document.deleted",
                doc.id,
                {"filename": doc.filename, "sha256": doc.sha256},
            )
            session.delete(doc)


def _document(scope: TenantScope, project: str, document_id: str) -> Document:
    row = get_project(scope, project)
    doc = scope.document(document_id)
    if doc is None or doc.project_id != row.id:
        raise NotFound(
            f"document {document_id} not found in project {project}", code="document_not_found"
        )
    return doc


def _artifact(pstore: ProjectStore, key: str) -> dict | None:
    try:
        return pstore.get_json(key)
    except ObjectNotFound:
        return None
