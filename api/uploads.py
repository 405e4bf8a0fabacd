"""Uploads: hashed while spooled (memory stays flat), checked against the per-file limit and the
tenant's storage quota before anything is stored, ZIP archives unpacked with limits, and
idempotent by sha256 within a project."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

from litestar.datastructures import UploadFile

from api.errors import PayloadTooLarge
from api.services.plans import Quotas
from assets.ingestion.archive import ArchiveLimits, ArchiveRejected, is_archive, unpack
from resources.metrics import count_upload
from resources.object_store import ProjectStore
from resources.repository import TenantScope
from resources.settings import Settings
from resources.tables import Document, Project

_CHUNK = 1 << 20


@dataclass
class Incoming:
    name: str
    size: int
    sha256: str
    file: IO[bytes]
    content_type: str | None
    failure: str | None = None  # set for archives that were rejected (stored, quarantined)
    archive: str | None = None


def safe_filename(name: str | None) -> str:
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return base[:300] or "unnamed"


def _hash(stream: IO[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    stream.seek(0)
    while block := stream.read(_CHUNK):
        digest.update(block)
        size += len(block)
    stream.seek(0)
    return digest.hexdigest(), size


def expand(uploads: list[UploadFile], settings: Settings) -> list[Incoming]:
    """Every file the request carries, archives unpacked; raises before anything is stored."""
    limit = settings.max_upload_bytes
    limits = ArchiveLimits(
        max_entries=settings.zip_max_entries,
        max_total_bytes=settings.zip_max_total_bytes,
        max_ratio=settings.zip_max_ratio,
        max_entry_bytes=limit,
    )
    incoming: list[Incoming] = []
    for upload in uploads:
        stream = cast(IO[bytes], upload.file)
        sha, size = _hash(stream)
        name = safe_filename(upload.filename)
        if size > limit:
            raise PayloadTooLarge(
                f"{name} is {size} bytes; the limit per file is {limit} bytes",
                code="file_too_large",
            )
        if not is_archive(cast(BinaryIO, stream)):
            incoming.append(Incoming(name, size, sha, stream, upload.content_type))
            continue
        try:
            entries = unpack(cast(BinaryIO, stream), limits)
        except ArchiveRejected as exc:
            stream.seek(0)
            incoming.append(
                Incoming(
                    name,
                    size,
                    sha,
                    stream,
                    upload.content_type,
                    failure=f"{exc.reason}: {exc.message}",
                )
            )
            continue
        for entry in entries:
            incoming.append(
                Incoming(
                    f"{name}/{entry.name}", entry.size, entry.sha256, entry.file, None, archive=name
                )
            )
    return incoming


def store_uploads(
    scope: TenantScope,
    project: Project,
    pstore: ProjectStore,
    incoming: list[Incoming],
    actor: str,
) -> tuple[list[Document], int]:
    """Record and store what is new; returns every document the request names and how many were
    new. The plan's document and storage quotas are checked first, with the tenant locked until
    the transaction ends, so concurrent uploads cannot together go over them."""
    scope.lock_tenant()  # before reading what exists: a concurrent upload of the same file waits
    fresh: dict[str, Incoming] = {}
    for item in incoming:
        if scope.document_by_sha256(project.id, item.sha256) is None:
            fresh.setdefault(item.sha256, item)
    Quotas(scope).check_upload(len(fresh), sum(i.size for i in fresh.values()))
    documents: list[Document] = []
    created = quarantined = 0
    for item in incoming:
        existing = scope.document_by_sha256(project.id, item.sha256)
        if existing is not None:
            documents.append(existing)
            continue
        key = f"raw/{item.sha256}"
        if not pstore.exists(key):
            pstore.put_stream(
                key,
                cast(BinaryIO, item.file),
                length=item.size,
                content_type=item.content_type or "application/octet-stream",
            )
        meta = {"archive": item.archive} if item.archive else {}
        doc = scope.add_document(
            project.id,
            filename=item.name,
            sha256=item.sha256,
            size_bytes=item.size,
            declared_type=item.content_type or mimetypes.guess_type(item.name)[0],
            object_key=pstore.key(key),
            status="quarantined" if item.failure else "uploaded",
            failure_reason=item.failure,
            meta=meta,
        )
        scope.audit(
            actor,
            "document.uploaded",
            doc.id,
            {"filename": item.name, "sha256": item.sha256, "bytes": item.size},
        )
        if item.failure:
            scope.audit(actor, "document.quarantined", doc.id, {"reason": item.failure})
            quarantined += 1
        documents.append(doc)
        created += 1
    count_upload("created", created - quarantined)
    count_upload("quarantined_on_upload", quarantined)
    count_upload("already_present", len(incoming) - created)
    return documents, created
