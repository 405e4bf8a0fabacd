"""deduped_documents: one copy of each distinct text."""

import dagster as dg
from dagster import AssetExecutionContext

from assets.dedupe.exact import exact_duplicates
from assets.project import project_handle, stage
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.object_store import ObjectStoreResource


@dg.asset(partitions_def=tenant_project, group_name="dedupe", kinds={"python"})
def deduped_documents(
    context: AssetExecutionContext,
    db: Database,
    store: ObjectStoreResource,
    normalized_documents: dict,
) -> dict:
    """Normalised documents without exact duplicates (same normalised-text hash); duplicates point at the kept copy."""
    handle = project_handle(context, db, store)
    docs = normalized_documents["documents"]
    with stage(context, handle, "deduped_documents") as figures:
        duplicates = exact_duplicates(docs)
        with handle.scope() as scope:
            for dup, kept in duplicates.items():
                doc = scope.document(dup)
                if doc is not None:
                    doc.status, doc.duplicate_of = "duplicate", kept
        kept_docs = [d for d in docs if d["id"] not in duplicates]
        figures.update(kept=len(kept_docs), duplicates=len(duplicates))
    ratio = len(duplicates) / len(docs) if docs else 0.0
    context.add_output_metadata(
        {"kept": len(kept_docs), "duplicates": len(duplicates), "duplicate_ratio": round(ratio, 3)}
    )
    return {
        "documents": kept_docs,
        "duplicates": [{"id": d, "duplicate_of": k} for d, k in duplicates.items()],
    }
