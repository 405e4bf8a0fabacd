"""raw_documents: the project's uploaded files, checked and typed by content."""

import hashlib
from collections import Counter

import dagster as dg
from dagster import AssetExecutionContext

from assets.normalization.sniff import DOC_TYPES, sniff_type
from assets.project import project_handle, stage
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.object_store import ObjectNotFound, ObjectStoreResource


def _failure(detected: str) -> str | None:
    if detected == "empty":
        return "empty: the file is empty; upload it again with its content"
    if detected not in DOC_TYPES:
        return (
            "unsupported_type: the content is not PDF, DOCX, HTML, Markdown, text or CSV "
            f"(detected {detected}); convert it to one of these formats"
        )
    return None


@dg.asset(partitions_def=tenant_project, group_name="ingestion", kinds={"s3", "sql"})
def raw_documents(context: AssetExecutionContext, db: Database, store: ObjectStoreResource) -> dict:
    """The project's uploaded files: sha256 verified, type sniffed from content, bad files marked failed."""
    handle = project_handle(context, db, store)
    with stage(context, handle, "raw_documents") as figures:
        entries = []
        with handle.scope() as scope:
            documents = scope.documents(handle.project_id)
            for doc in documents:
                try:
                    data = handle.store.get_bytes(f"raw/{doc.sha256}")
                except ObjectNotFound:
                    data = None
                if data is None or hashlib.sha256(data).hexdigest() != doc.sha256:
                    doc.status, doc.failure_reason = (
                        "failed",
                        "missing_object: the stored file is missing or does not match its "
                        "sha256; upload it again",
                    )
                else:
                    doc.detected_type = sniff_type(data, doc.filename)
                    reason = _failure(doc.detected_type)
                    doc.status, doc.failure_reason = (
                        ("failed", reason) if reason else ("uploaded", None)
                    )
                    doc.duplicate_of = None
                entries.append(
                    {
                        "id": doc.id,
                        "filename": doc.filename,
                        "sha256": doc.sha256,
                        "size_bytes": doc.size_bytes,
                        "detected_type": doc.detected_type,
                        "key": f"raw/{doc.sha256}",
                        "status": doc.status,
                        "failure_reason": doc.failure_reason,
                    }
                )
        types = Counter(e["detected_type"] for e in entries)
        failed = [e for e in entries if e["status"] == "failed"]
        figures.update(documents=len(entries), failed=len(failed))
    preview = "\n".join(
        f"| {e['filename']} | {e['detected_type']} | {e['size_bytes']} | {e['status']} |"
        for e in entries[:30]
    )
    context.add_output_metadata(
        {
            "documents": len(entries),
            "failed": len(failed),
            "total_bytes": sum(e["size_bytes"] for e in entries),
            "types": dict(types),
            "preview": dg.MetadataValue.md(
                "| file | type | bytes | status |\n|---|---|---|---|\n" + preview
            ),
        }
    )
    return {"documents": entries}
