"""normalized_documents: text per page from every admitted file, extracted in an isolated
process (OCR for scanned pages), normalised, with metadata and a quality score."""

from collections import Counter

import dagster as dg
from dagster import AssetExecutionContext

from assets.normalization.extract import ExtractionError
from assets.normalization.isolate import extract_isolated
from assets.normalization.normalize import (
    normalize_text,
    remove_repeated_lines,
    text_hash,
    word_count,
)
from assets.project import project_handle, stage
from assets.quality.score import detect_language, score_document
from assets.warmup import prewarm
from pipelines.partitions import tenant_project
from resources.database import Database
from resources.object_store import ObjectStoreResource
from resources.settings import get_settings

NORMALIZER_VERSION = "normalize-v2"


def normalize_document(data: bytes, doc_type: str, timeout_s: float, memory_mb: int) -> dict:
    """Extract (isolated) and normalise one file; raises ExtractionError for files we cannot read."""
    extraction = extract_isolated(data, doc_type, timeout_s=timeout_s, memory_mb=memory_mb)
    cleaned, removed = remove_repeated_lines([normalize_text(p.text) for p in extraction.pages])
    pages = [
        {
            "number": p.number,
            "text": text,
            "method": p.method,
            "ocr_confidence": p.ocr_confidence,
        }
        for p, text in zip(extraction.pages, cleaned, strict=True)
    ]
    full = "\n\n".join(p["text"] for p in pages)
    if not full.strip():
        raise ExtractionError("no_text", "no text could be extracted from the file, even by OCR")
    language, language_probability = detect_language(full)
    ocr = [
        p["ocr_confidence"]
        for p in pages
        if p["method"] == "ocr" and p["ocr_confidence"] is not None
    ]
    ocr_confidence = sum(ocr) / len(ocr) if ocr else None
    quality = score_document(full, ocr_confidence=ocr_confidence, language=language)
    return {
        "pages": pages,
        "method": extraction.method,
        "metadata": {
            **extraction.metadata,
            "page_count": len(pages),
            "word_count": word_count(full),
            "language": language,
            "language_probability": round(language_probability, 3),
            "repeated_lines_removed": removed,
        },
        "language": language,
        "quality": {"score": quality.score, "reasons": quality.reasons, "signals": quality.signals},
        "text_hash": text_hash(full),
        "word_count": word_count(full),
        "version": NORMALIZER_VERSION,
    }


def _low_quality(score: float, threshold: float, reasons: list[str]) -> str:
    return (
        f"low_quality: score {score:.2f} is under the project's threshold {threshold:.2f}: "
        f"{'; '.join(reasons) or 'no reason given'}"
    )


def _cached_entry(doc) -> dict:
    return {
        "id": doc.id,
        "filename": doc.filename,
        "sha256": doc.sha256,
        "key": f"normalized/{doc.sha256}.json",
        "pages": doc.page_count or 0,
        "word_count": doc.word_count or 0,
        "text_hash": doc.text_hash,
        "quality": doc.quality_score if doc.quality_score is not None else 0.0,
        "language": doc.language,
    }


@dg.asset(partitions_def=tenant_project, group_name="normalization", kinds={"python"})
def normalized_documents(
    context: AssetExecutionContext, db: Database, store: ObjectStoreResource, raw_documents: dict
) -> dict:
    """Text per page (PDF with OCR fallback, DOCX, HTML main content, MD, TXT, CSV), extracted in a time- and memory-limited process, NFKC-normalised, repeated headers/footers removed, language and quality scored."""
    handle = project_handle(context, db, store)
    settings = get_settings()
    threshold = handle.settings.quality_threshold
    entries, reused, quarantined, excluded, ocr_pages = [], 0, 0, 0, 0
    with stage(context, handle, "normalized_documents") as figures:
        uploaded = [r for r in raw_documents["documents"] if r["status"] == "uploaded"]
        with handle.scope() as scope:
            # Documents processed by an earlier run with this normaliser: the database row has
            # everything downstream needs, so neither the file nor its text is read again.
            rows = {d.id: d for d in scope.documents(handle.project_id)}
            todo = []
            for raw in uploaded:
                doc = rows.get(raw["id"])
                if (
                    doc is None
                    or (doc.meta or {}).get("normalizer") != NORMALIZER_VERSION
                    or not doc.text_hash
                ):
                    todo.append(raw)
                    continue
                reused += 1
                entry = _cached_entry(doc)
                if entry["quality"] < threshold:
                    reasons = (doc.meta or {}).get("quality_reasons", [])
                    doc.status = "excluded"
                    doc.failure_reason = _low_quality(entry["quality"], threshold, reasons)
                    excluded += 1
                    continue
                doc.status, doc.failure_reason = "ready", None
                entries.append(entry)
        if todo:
            prewarm()
        for raw in todo:
            key = f"normalized/{raw['sha256']}.json"
            cached = handle.store.get_json(key) if handle.store.exists(key) else None
            if cached and cached.get("version") == NORMALIZER_VERSION:
                result, reused = cached, reused + 1
            else:
                try:
                    data = handle.store.get_bytes(raw["key"])
                    result = normalize_document(
                        data,
                        raw["detected_type"],
                        settings.parser_timeout_s,
                        settings.parser_memory_mb,
                    )
                except ExtractionError as exc:
                    result = {"error": f"{exc.reason}: {exc}"}
                if "error" not in result:
                    handle.store.put_json(
                        key, {"document_id": raw["id"], "filename": raw["filename"], **result}
                    )
            with handle.scope() as scope:
                doc = scope.document(raw["id"])
                if doc is None:
                    continue
                if "error" in result:
                    doc.status, doc.failure_reason = "quarantined", result["error"]
                    scope.audit(
                        "dagster", "document.quarantined", doc.id, {"reason": result["error"]}
                    )
                    quarantined += 1
                    continue
                quality = result["quality"]
                doc.page_count = len(result["pages"])
                doc.word_count = result["word_count"]
                doc.text_hash = result["text_hash"]
                doc.extraction_method = result["method"]
                doc.language = result["language"]
                doc.quality_score = quality["score"]
                doc.meta = {
                    **(doc.meta or {}),
                    **result["metadata"],
                    "quality_reasons": quality["reasons"],
                    "normalizer": NORMALIZER_VERSION,
                    "ocr_pages": sum(1 for p in result["pages"] if p.get("method") == "ocr"),
                }
                if quality["score"] < threshold:
                    doc.status = "excluded"
                    doc.failure_reason = _low_quality(
                        quality["score"], threshold, quality["reasons"]
                    )
                    excluded += 1
                    continue
                doc.status, doc.failure_reason = "ready", None
            ocr_pages += sum(1 for p in result["pages"] if p.get("method") == "ocr")
            entries.append(
                {
                    "id": raw["id"],
                    "filename": raw["filename"],
                    "sha256": raw["sha256"],
                    "key": key,
                    "pages": len(result["pages"]),
                    "word_count": result["word_count"],
                    "text_hash": result["text_hash"],
                    "quality": quality["score"],
                    "language": result["language"],
                }
            )
        # Upload order decides which copy of a duplicate is kept downstream.
        order = {r["id"]: i for i, r in enumerate(uploaded)}
        entries.sort(key=lambda e: order[e["id"]])
        figures.update(
            documents=len(entries), quarantined=quarantined, excluded=excluded, reused=reused
        )
    context.add_output_metadata(
        {
            "documents": len(entries),
            "quarantined_by_extraction": quarantined,
            "excluded_low_quality": excluded,
            "reused_from_cache": reused,
            "pages": sum(e["pages"] for e in entries),
            "ocr_pages": ocr_pages,
            "words": sum(e["word_count"] for e in entries),
            "languages": dict(Counter(e["language"] for e in entries)),
            "quality_threshold": threshold,
        }
    )
    return {"documents": entries, "version": NORMALIZER_VERSION}
