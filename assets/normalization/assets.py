"""normalized_documents: text per page from every supported file, normalised."""

import dagster as dg
from dagster import AssetExecutionContext

from assets.normalization.extract import ExtractionError, extract
from assets.normalization.normalize import normalize_text, text_hash, word_count
from assets.project import project_handle, stage
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.object_store import ObjectStoreResource

NORMALIZER_VERSION = "normalize-v1"


def normalize_document(data: bytes, doc_type: str) -> dict:
    """Extract and normalise one file; raises ExtractionError for files we cannot read."""
    extraction = extract(data, doc_type)
    pages = [{"number": p.number, "text": normalize_text(p.text)} for p in extraction.pages]
    full = "\n\n".join(p["text"] for p in pages)
    if not full.strip():
        raise ExtractionError("no_text", "no text could be extracted from the file")
    return {
        "pages": pages,
        "method": extraction.method,
        "metadata": extraction.metadata,
        "text_hash": text_hash(full),
        "word_count": word_count(full),
        "version": NORMALIZER_VERSION,
    }


@dg.asset(partitions_def=tenant_project, group_name="normalization", kinds={"python"})
def normalized_documents(
    context: AssetExecutionContext, db: Database, store: ObjectStoreResource, raw_documents: dict
) -> dict:
    """Text per page (PDF, DOCX, HTML, MD, TXT, CSV), NFKC and whitespace normalised; unreadable files marked failed."""
    handle = project_handle(context, db, store)
    entries, reused = [], 0
    with stage(context, handle, "normalized_documents") as figures:
        for raw in raw_documents["documents"]:
            if raw["status"] == "failed":
                continue
            key = f"normalized/{raw['sha256']}.json"
            cached = handle.store.get_json(key) if handle.store.exists(key) else None
            if cached and cached.get("version") == NORMALIZER_VERSION:
                result, reused = cached, reused + 1
            else:
                try:
                    data = handle.store.get_bytes(raw["key"])
                    result = normalize_document(data, raw["detected_type"])
                except ExtractionError as exc:
                    result = {"error": f"{exc.reason}: {exc}", "version": NORMALIZER_VERSION}
                except Exception as exc:  # a hostile file costs one document, never the run
                    context.log.warning(f"{raw['filename']}: extraction crashed: {exc!r}")
                    result = {"error": f"corrupt: {type(exc).__name__}: {exc}"}
                if "error" not in result:
                    handle.store.put_json(
                        key, {"document_id": raw["id"], "filename": raw["filename"], **result}
                    )
            with handle.scope() as scope:
                doc = scope.document(raw["id"])
                if doc is None:
                    continue
                if "error" in result:
                    doc.status, doc.failure_reason = "failed", result["error"]
                    continue
                doc.status, doc.failure_reason = "ready", None
                doc.page_count = len(result["pages"])
                doc.word_count = result["word_count"]
                doc.text_hash = result["text_hash"]
                doc.extraction_method = result["method"]
                doc.meta = {**(doc.meta or {}), **result.get("metadata", {})}
            entries.append(
                {
                    "id": raw["id"],
                    "filename": raw["filename"],
                    "sha256": raw["sha256"],
                    "key": key,
                    "pages": len(result["pages"]),
                    "word_count": result["word_count"],
                    "text_hash": result["text_hash"],
                }
            )
        failed = sum(1 for r in raw_documents["documents"] if r["status"] != "failed") - len(
            entries
        )
        figures.update(documents=len(entries), failed=failed, reused=reused)
    context.add_output_metadata(
        {
            "documents": len(entries),
            "failed_extraction": failed,
            "reused_from_cache": reused,
            "pages": sum(e["pages"] for e in entries),
            "words": sum(e["word_count"] for e in entries),
        }
    )
    return {"documents": entries, "version": NORMALIZER_VERSION}
