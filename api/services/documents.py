"""Documents: upload (ZIP archives unpacked, quotas held), list, detail with extraction and PII
summary, delete (from the object store and the database, audited)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from litestar.datastructures import UploadFile
from sqlalchemy import func, select

from api import schemas, views
from api.errors import BadRequest, Conflict, NotFound
from api.security import Principal
from api.services import cited_text
from api.services.base import TenantService, get_project
from api.uploads import expand, store_uploads
from resources.database import Database
from resources.object_store import ObjectNotFound, ObjectStore, ProjectStore
from resources.repository import TenantScope
from resources.settings import get_settings
from resources.tables import Document

# What a document leaves in the object store, by its sha256.
ARTIFACTS = ("raw/{sha}", "normalized/{sha}.json", "screened/{sha}.json")
# A document's life: uploaded -> pending_scan -> ready, or set aside with a reason.
STATUSES = ("uploaded", "pending_scan", "ready", "quarantined", "excluded", "duplicate", "failed")


@dataclass(frozen=True)
class DocumentTable:
    """A project's documents, those of one status when `status` is set, and how many the
    project has of each status (every status, zero included)."""

    documents: list[schemas.Document]
    counts: dict[str, int]
    status: str | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def uploaded_files(form: dict[str, Any]) -> list[UploadFile]:
    """Every file in a multipart form, whatever its field names."""
    return [
        f
        for value in form.values()
        for f in (value if isinstance(value, list) else [value])
        if isinstance(f, UploadFile)
    ]


class DocumentService(TenantService):
    def __init__(self, db: Database, principal: Principal, store: ObjectStore) -> None:
        super().__init__(db, principal)
        self.store = store

    def _pstore(self, project_slug: str) -> ProjectStore:
        return ProjectStore(self.store, self.tenant_slug, project_slug)

    def _document(self, scope: TenantScope, project: str, document_id: str) -> Document:
        row = get_project(scope, project)
        doc = scope.document(document_id)
        if doc is None or doc.project_id != row.id:
            raise NotFound(
                f"document {document_id} not found in project {project}",
                code="document_not_found",
            )
        return doc

    def upload(self, project: str, files: Sequence[UploadFile]) -> schemas.UploadResult:
        if not files:
            raise BadRequest(
                "no file in the request: send multipart/form-data with one or more file fields",
                code="no_files",
            )
        settings = get_settings()
        incoming = expand(list(files), settings)
        try:
            with self.scope() as scope:
                row = get_project(scope, project)
                documents, created = store_uploads(
                    scope, row, self._pstore(row.slug), incoming, self.actor
                )
                return schemas.UploadResult(
                    documents=[views.document(d) for d in documents],
                    created=created,
                    already_present=len(documents) - created,
                )
        finally:
            for item in incoming:
                item.file.close()

    def list(self, project: str) -> list[schemas.Document]:
        with self.scope() as scope:
            return [views.document(d) for d in scope.documents(get_project(scope, project).id)]

    def table(self, project: str, status: str | None = None) -> DocumentTable:
        """The documents (one query, however many) and the count of each status (one more)."""
        if status is not None and status not in STATUSES:
            raise BadRequest(
                f"status must be one of {', '.join(STATUSES)}", code="invalid_document_status"
            )
        with self.scope() as scope:
            row = get_project(scope, project)
            found: dict[str, int] = {
                state: int(n)
                for state, n in scope.session.execute(
                    select(Document.status, func.count(Document.id))
                    .where(Document.tenant_id == self.tenant_id, Document.project_id == row.id)
                    .group_by(Document.status)
                ).tuples()
            }
            documents = scope.documents(row.id, [status] if status else None)
            return DocumentTable(
                documents=[views.document(d) for d in documents],
                counts={s: found.get(s, 0) for s in STATUSES},
                status=status,
            )

    def detail(self, project: str, document_id: str) -> schemas.DocumentDetail:
        with self.scope() as scope:
            doc = self._document(scope, project, document_id)
            pstore = self._pstore(project)
            return views.document_detail(
                doc,
                _artifact(pstore, f"normalized/{doc.sha256}.json"),
                _artifact(pstore, f"screened/{doc.sha256}.json"),
            )

    def delete(self, project: str, document_id: str) -> schemas.Document:
        """Delete it from the object store and the database (audited); returns what it was."""
        with self.scope() as scope:
            doc = self._document(scope, project, document_id)
            gone = views.document(doc)
            pstore = self._pstore(project)
            for key in ARTIFACTS:
                pstore.delete(key.format(sha=doc.sha256))
            scope.audit(
                self.actor,
                "document.deleted",
                doc.id,
                {"filename": doc.filename, "sha256": doc.sha256},
            )
            scope.session.delete(doc)
            return gone

    def page_view(
        self, project: str, document_id: str, page: int, start: int | None, end: int | None
    ) -> PageView:
        """One page as the viewer shows it: the screened text (redacted under the project's
        policy, with what the serving deployment's chunks also hid), page characters
        [start, end) marked. Nothing for a document not screened (or blocked): 409."""
        with self.scope() as scope:
            doc = self._document(scope, project, document_id)
            document = views.document(doc)
            project_row = get_project(scope, project)
            deployment = scope.active_deployment(project_row.id) or next(
                iter(scope.deployments(project_row.id)), None
            )
            chunks_key = (deployment.manifest or {}).get("chunks_key") if deployment else None
        pstore = self._pstore(project)
        screened = _artifact(pstore, f"screened/{document.sha256}.json")
        if not screened or screened.get("status") not in SHOWN_TEXT:
            state = (screened or {}).get("status") or "not screened yet"
            raise Conflict(
                f"document {document.filename} has no text to show ({state}): the viewer shows "
                "a document's text once the pipeline has screened it for personal data",
                code="document_text_unavailable",
            )
        pages = {int(p["number"]): str(p.get("text", "")) for p in screened.get("pages", [])}
        if page not in pages:
            raise NotFound(
                f"document {document.filename} has no page {page}; its pages are "
                f"{min(pages, default=0)} to {max(pages, default=0)}",
                code="page_not_found",
            )
        text = pages[page]
        if (start is None) != (end is None) or (
            start is not None and end is not None and not 0 <= start < end <= len(text)
        ):
            raise BadRequest(
                f"start and end go together, with 0 <= start < end <= {len(text)} (the page's "
                "characters)",
                code="invalid_span",
            )
        chunks = _placeholder_chunks(self.store, self.tenant_slug, project, chunks_key).get(
            (document.id, page), []
        )
        edits = cited_text.residual_edits(text, chunks)
        return PageView(
            document=document,
            page=page,
            pages=sorted(pages),
            pieces=cited_text.pieces(text, edits, start, end),
            start=start,
            end=end,
            redaction_status=str(screened.get("status")),
            residual=len(edits),
        )

    def cited_spans(
        self, project: str, citations: Sequence[dict], chunks: Mapping[str, dict]
    ) -> Spans:
        """Each citation's quote (or chunk) as page characters, for `page_view`: the cited
        chunk (`chunks` by id, as retrieval returned it) says how its offsets map; the page
        text is read only for a chunk with placeholders (only those can differ from it)."""
        spans: Spans = []
        pages: dict[str, dict[int, str]] = {}
        for citation in citations:
            start = int(citation.get("quote_start", citation["start"]))
            end = int(citation.get("quote_end", citation["end"]))
            chunk = chunks.get(str(citation.get("chunk_id")))
            if chunk is None or not cited_text.PLACEHOLDER.search(str(chunk.get("text", ""))):
                spans.append((start, end))
                continue
            document_id = str(citation["document_id"])
            if document_id not in pages:
                with self.scope() as scope:
                    found = scope.document(document_id)
                # A document deleted since the deployment was built: nothing to map against.
                sha = found.sha256 if found is not None else None
                screened = (sha and _artifact(self._pstore(project), f"screened/{sha}.json")) or {}
                pages[document_id] = {
                    int(p["number"]): str(p.get("text", "")) for p in screened.get("pages", [])
                }
            text = pages[document_id].get(int(citation["page"]))
            spans.append(
                (start, end) if text is None else cited_text.quote_span(text, chunk, start, end)
            )
        return spans


def _artifact(pstore: ProjectStore, key: str) -> dict | None:
    try:
        return pstore.get_json(key)
    except ObjectNotFound:
        return None


Spans = list[tuple[int, int]]
# A page's text is shown for these screening outcomes only (as `views.document_detail` does).
SHOWN_TEXT = ("redacted", "clean", "allowed")


@dataclass(frozen=True)
class PageView:
    """One page of a document as the viewer shows it (`DocumentService.page_view`)."""

    document: schemas.Document
    page: int
    pages: list[int]
    pieces: list[cited_text.Piece]
    start: int | None
    end: int | None
    redaction_status: str
    residual: int  # runs of the page hidden because the deployment's chunks hid them

    @property
    def marked(self) -> str:
        return "".join(p.text for p in self.pieces if p.marked)


@lru_cache(maxsize=16)
def _placeholder_chunks(
    store: ObjectStore, tenant: str, project: str, chunks_key: str | None
) -> dict[tuple[str, int], list[dict]]:
    """A deployment's chunks that hold a placeholder, by (document id, page): only those can
    hide more than their page does. A chunks file never changes once written (its key names
    its generation), so it is read once per process."""
    if not chunks_key:
        return {}
    from assets.dataset.assets import from_jsonl

    try:
        rows = from_jsonl(ProjectStore(store, tenant, project).get_bytes(chunks_key))
    except ObjectNotFound:
        return {}
    found: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        if cited_text.PLACEHOLDER.search(str(row.get("text", ""))):
            found.setdefault((str(row["document_id"]), int(row["page"])), []).append(
                {"start": row["start"], "end": row["end"], "text": row["text"]}
            )
    return found
