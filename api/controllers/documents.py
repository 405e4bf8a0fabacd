"""Documents: multipart upload straight to the object store, idempotent by sha256."""

from __future__ import annotations

import hashlib
import mimetypes
from typing import Annotated, Any, BinaryIO, cast

from litestar import Controller, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body

from api import schemas, views
from api.auth import Principal
from api.controllers.projects import get_project
from api.errors import BadRequest, NotFound, PayloadTooLarge
from resources.database import Database
from resources.object_store import ObjectStore, ProjectStore
from resources.repository import TenantScope
from resources.settings import get_settings

_CHUNK = 1 << 20


def _sha256_and_size(upload: UploadFile) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    upload.file.seek(0)
    while block := upload.file.read(_CHUNK):
        digest.update(block)
        size += len(block)
    upload.file.seek(0)
    return digest.hexdigest(), size


def _safe_filename(name: str | None) -> str:
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:300] or "unnamed"


class DocumentController(Controller):
    path = "/v1/projects/{project:str}/documents"
    tags = ["documents"]

    @post("/", operation_id="uploadDocuments", sync_to_thread=True, status_code=201)
    def upload(
        self,
        project: str,
        data: Annotated[
            dict[str, Any],
            Body(media_type=RequestEncodingType.MULTI_PART),
        ],
        principal: Principal,
        db: Database,
        store: ObjectStore,
    ) -> schemas.UploadResult:
        """Upload one or more files (multipart, any field name). The same content twice is stored once."""
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
        limit = get_settings().max_upload_bytes
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            pstore = ProjectStore(store, principal.tenant_slug, row.slug)
            hashed = []
            for upload in files:
                sha, size = _sha256_and_size(upload)
                name = _safe_filename(upload.filename)
                if size > limit:
                    raise PayloadTooLarge(
                        f"{name} is {size} bytes; the limit per file is {limit} bytes",
                        code="file_too_large",
                    )
                hashed.append((upload, sha, size, name))
            results, created = [], 0
            for upload, sha, size, name in hashed:
                existing = scope.document_by_sha256(row.id, sha)
                if existing is not None:
                    results.append(existing)
                    continue
                key = f"raw/{sha}"
                if not pstore.exists(key):
                    pstore.put_stream(
                        key,
                        cast(BinaryIO, upload.file),
                        length=size,
                        content_type=upload.content_type or "application/octet-stream",
                    )
                doc = scope.add_document(
                    row.id,
                    filename=name,
                    sha256=sha,
                    size_bytes=size,
                    declared_type=upload.content_type or mimetypes.guess_type(name)[0],
                    object_key=pstore.key(key),
                    status="uploaded",
                    meta={},
                )
                scope.audit(
                    principal.actor,
                    "document.uploaded",
                    doc.id,
                    {"filename": name, "sha256": sha, "bytes": size},
                )
                results.append(doc)
                created += 1
            return schemas.UploadResult(
                documents=[views.document(d) for d in results],
                created=created,
                already_present=len(results) - created,
            )

    @get("/", operation_id="listDocuments", sync_to_thread=True)
    def list(self, project: str, principal: Principal, db: Database) -> list[schemas.Document]:
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            return [views.document(d) for d in scope.documents(get_project(scope, project).id)]

    @get("/{document_id:str}", operation_id="getDocument", sync_to_thread=True)
    def get(
        self, project: str, document_id: str, principal: Principal, db: Database
    ) -> schemas.Document:
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            doc = scope.document(document_id)
            if doc is None or doc.project_id != row.id:
                raise NotFound(
                    f"document {document_id} not found in project {project}",
                    code="document_not_found",
                )
            return views.document(doc)
