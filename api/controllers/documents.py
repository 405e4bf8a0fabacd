"""Documents: upload (ZIP archives unpacked), list, detail with extraction and PII summary, delete."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, delete, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body

from api import schemas
from api.security import requires_scope
from api.services.documents import DocumentService, uploaded_files


class DocumentController(Controller):
    path = "/v1/projects/{project:str}/documents"
    tags = ["documents"]

    @post(
        "/",
        operation_id="uploadDocuments",
        sync_to_thread=True,
        status_code=201,
        guards=[requires_scope("write")],
    )
    def upload(
        self,
        project: str,
        data: Annotated[
            dict[str, Any],
            Body(
                media_type=RequestEncodingType.MULTI_PART,
                # Any field names are read; the document names the usual one.
                schema_extra={
                    "properties": {
                        "files": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "string", "format": "binary"},
                        }
                    },
                    "required": ["files"],
                },
            ),
        ],
        documents: DocumentService,
    ) -> schemas.UploadResult:
        """Upload files (multipart, any field names; ZIP archives are unpacked). The same content
        twice is stored once; the plan's document and storage quotas hold."""
        return documents.upload(project, uploaded_files(data))

    @get("/", operation_id="listDocuments", sync_to_thread=True, guards=[requires_scope("read")])
    def list(self, project: str, documents: DocumentService) -> list[schemas.Document]:
        return documents.list(project)

    @get(
        "/{document_id:str}",
        operation_id="getDocument",
        sync_to_thread=True,
        guards=[requires_scope("read")],
    )
    def get(
        self, project: str, document_id: str, documents: DocumentService
    ) -> schemas.DocumentDetail:
        """Metadata, per-page extraction method, PII summary and a redacted text preview."""
        return documents.detail(project, document_id)

    @delete(
        "/{document_id:str}",
        operation_id="deleteDocument",
        sync_to_thread=True,
        status_code=204,
        guards=[requires_scope("write")],
    )
    def remove(self, project: str, document_id: str, documents: DocumentService) -> None:
        """Delete the document from the database and the object store (audited)."""
        documents.delete(project, document_id)
