"""Portal pages: a project's documents (a table with a status filter, uploads by drag and drop
or a plain form), one document's detail (extraction per page, scan, quality, PII and the
redacted preview) and its deletion. The script's uploads go to the JSON API
(POST /v1/projects/{project}/documents); the form without script posts here, and both reach
`DocumentService.upload`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from api.errors import AppError
from api.portal.pages import flash, may, page_scope, redirect, render
from api.services.documents import DocumentService, DocumentTable, uploaded_files

UploadForm = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]
TABLE_ID = "documents-table"


def _is_fragment(request: Request, target: str) -> bool:
    """An HTMX request that replaces only `target` (the page's own requests send its id)."""
    return request.headers.get("hx-request") == "true" and (
        request.headers.get("hx-target") == target
    )


def _list_page(
    request: Request,
    project: str,
    table: DocumentTable,
    error: str | None = None,
    status_code: int = 200,
) -> Template:
    return render(
        request,
        "documents/list.html",
        active="documents",
        project=project,
        status_code=status_code,
        table=table,
        can_write=may(request, "write"),
        error=error,
        table_id=TABLE_ID,
    )


class PortalDocumentController(Controller):
    path = "/t/{tenant:str}/projects/{project:str}/documents"
    include_in_schema = False

    @get("/", guards=[page_scope("read")], sync_to_thread=True)
    def documents(
        self,
        request: Request,
        tenant: str,
        project: str,
        documents: DocumentService,
        status: str | None = None,
    ) -> Template:
        table = documents.table(project, status or None)
        if _is_fragment(request, TABLE_ID):
            # The table alone, after uploads (one query for the rows, one for the counts).
            return Template(
                template_name="documents/_table.html",
                context={
                    "tenant": tenant,
                    "project": project,
                    "table": table,
                    "table_id": TABLE_ID,
                },
            )
        return _list_page(request, project, table)

    @post("/", guards=[page_scope("write")], sync_to_thread=True)
    def upload(
        self,
        request: Request,
        tenant: str,
        project: str,
        data: UploadForm,
        documents: DocumentService,
    ) -> Redirect | Template:
        """The upload form without script: the same service as the API, then the table."""
        try:
            result = documents.upload(project, uploaded_files(data))
        except AppError as exc:
            return _list_page(
                request, project, documents.table(project), exc.message, exc.status_code
            )
        quarantined = [d for d in result.documents if d.status == "quarantined"]
        message = f"{result.created} file(s) stored, {result.already_present} already present."
        if quarantined:
            message += " Quarantined: " + "; ".join(
                f"{d.filename} ({d.failure_reason})" for d in quarantined
            )
        flash(request, message, "warn" if quarantined else "ok")
        return redirect(f"/t/{tenant}/projects/{project}/documents")

    @get("/{document_id:str}", guards=[page_scope("read")], sync_to_thread=True)
    def detail(
        self,
        request: Request,
        tenant: str,
        project: str,
        document_id: str,
        documents: DocumentService,
    ) -> Template:
        return render(
            request,
            "documents/detail.html",
            active="documents",
            project=project,
            detail=documents.detail(project, document_id),
            can_write=may(request, "write"),
        )

    @post("/{document_id:str}/delete", guards=[page_scope("write")], sync_to_thread=True)
    def delete(
        self,
        request: Request,
        tenant: str,
        project: str,
        document_id: str,
        documents: DocumentService,
    ) -> Redirect:
        """Deleted from the object store and the database, audited (the form asks first)."""
        gone = documents.delete(project, document_id)
        flash(request, f"Deleted {gone.filename}.")
        return redirect(f"/t/{tenant}/projects/{project}/documents")
