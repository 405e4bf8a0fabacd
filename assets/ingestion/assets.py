"""raw_documents: the project's uploaded files, scanned for malware, then typed by content."""

import hashlib
from collections import Counter

import dagster as dg
from dagster import AssetExecutionContext

from assets.ingestion.admission import admission_problem
from assets.normalization.sniff import sniff_type
from assets.project import project_handle, stage
from assets.warmup import prewarm
from pipelines.partitions import tenant_project
from resources.antivirus import Antivirus, ScannerUnavailable
from resources.database import Database
from resources.object_store import ObjectNotFound, ObjectStoreResource
from resources.tables import Document

# Documents in these states are not looked at again (a new upload is a new document).
SETTLED = frozenset({"quarantined"})


def _scan(doc: Document, data: bytes, antivirus: Antivirus) -> str | None:
    """Scan unless already scanned clean or skipped; returns a status to stop at, if any."""
    if doc.scan_status in ("clean", "skipped"):
        return None
    scanner = antivirus.scanner()
    try:
        if scanner is None:
            raise ScannerUnavailable("no malware scanner is configured (set PRIVATUNE_CLAMD)")
        result = scanner.scan_bytes(data)
    except ScannerUnavailable as exc:
        if antivirus.is_required():
            doc.scan_status, doc.scan_detail = None, str(exc)[:300]
            doc.failure_reason = (
                f"pending_scan: {exc}; the document is scanned again by the next run"
            )
            return "pending_scan"
        doc.scan_status, doc.scan_detail = "skipped", f"not scanned: {exc}"[:300]
        return None
    if result.status == "infected":
        doc.scan_status, doc.scan_detail = (
            "infected",
            f"{result.signature} ({result.scanner})"[:300],
        )
        doc.failure_reason = (
            f"malware: {result.signature} found by {result.scanner}; the file is never parsed"
        )
        return "quarantined"
    doc.scan_status, doc.scan_detail = "clean", result.scanner[:300]
    return None


@dg.asset(
    partitions_def=tenant_project,
    group_name="ingestion",
    kinds={"s3", "sql"},
    retry_policy=dg.RetryPolicy(max_retries=2, delay=10),
    check_specs=[
        dg.AssetCheckSpec(
            "quarantine_count",
            asset="raw_documents",
            description="Documents held back (malware, wrong or unsupported type, empty, unreadable).",
        )
    ],
)
def raw_documents(
    context: AssetExecutionContext, db: Database, store: ObjectStoreResource, antivirus: Antivirus
):
    """The project's uploads: malware-scanned by clamd before any parser, sha256 verified, type sniffed from content; bad files quarantined with a reason."""
    handle = project_handle(context, db, store)
    entries = []
    with stage(context, handle, "raw_documents") as figures:
        with handle.scope() as scope:
            # Audited once the loop is done: an audit row locks the tenant's chain until the
            # transaction ends, and scanning the rest must not hold the API's audit writes up.
            quarantined: list[tuple[str, str | None]] = []
            for doc in scope.documents(handle.project_id):
                if doc.status in SETTLED:
                    entries.append(_entry(doc))
                    continue
                if _admitted(doc):
                    # Scanned and typed by an earlier run: no need to read the file again.
                    doc.status, doc.failure_reason = "uploaded", None
                    entries.append(_entry(doc))
                    continue
                try:
                    data = handle.store.get_bytes(f"raw/{doc.sha256}")
                except ObjectNotFound:
                    data = None
                if data is None or hashlib.sha256(data).hexdigest() != doc.sha256:
                    doc.status = "failed"
                    doc.failure_reason = (
                        "missing_object: the stored file is missing or does not match its sha256; "
                        "upload it again"
                    )
                    entries.append(_entry(doc))
                    continue
                stop = _scan(doc, data, antivirus)
                if stop == "quarantined":
                    quarantined.append((doc.id, doc.failure_reason))
                if stop:
                    doc.status = stop
                    entries.append(_entry(doc))
                    continue
                doc.detected_type = sniff_type(data, doc.filename)
                problem = admission_problem(doc.detected_type, doc.filename)
                if problem:
                    doc.status, doc.failure_reason = "quarantined", problem
                    quarantined.append((doc.id, problem))
                else:
                    doc.status, doc.failure_reason = "uploaded", None
                    # A new document to extract: its text will need the language model and
                    # Presidio (nothing to load for one that is quarantined).
                    prewarm()
                entries.append(_entry(doc))
            for document_id, reason in quarantined:
                scope.audit("dagster", "document.quarantined", document_id, {"reason": reason})
        statuses = Counter(e["status"] for e in entries)
        held = [e for e in entries if e["status"] in ("quarantined", "pending_scan", "failed")]
        reasons = Counter((e["failure_reason"] or "").split(":", 1)[0] for e in held)
        figures.update(documents=len(entries), held_back=len(held))
    preview = "\n".join(
        f"| {e['filename']} | {e['detected_type']} | {e['size_bytes']} | {e['status']} | {e['scan_status']} |"
        for e in entries[:40]
    )
    yield dg.Output(
        {"documents": entries},
        metadata={
            "documents": len(entries),
            "held_back": len(held),
            "by_status": dict(statuses),
            "total_bytes": sum(e["size_bytes"] for e in entries),
            "preview": dg.MetadataValue.md(
                "| file | type | bytes | status | scan |\n|---|---|---|---|---|\n" + preview
            ),
        },
    )
    yield dg.AssetCheckResult(
        check_name="quarantine_count",
        passed=statuses.get("quarantined", 0) == 0 and statuses.get("pending_scan", 0) == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "quarantined": statuses.get("quarantined", 0),
            "pending_scan": statuses.get("pending_scan", 0),
            "by_reason": dict(reasons),
        },
    )


def _admitted(doc: Document) -> bool:
    return (
        doc.scan_status in ("clean", "skipped")
        and doc.detected_type is not None
        and doc.status not in ("failed", "pending_scan", "uploaded")
    )


def _entry(doc: Document) -> dict:
    return {
        "id": doc.id,
        "filename": doc.filename,
        "sha256": doc.sha256,
        "size_bytes": doc.size_bytes,
        "detected_type": doc.detected_type,
        "key": f"raw/{doc.sha256}",
        "status": doc.status,
        "scan_status": doc.scan_status,
        "failure_reason": doc.failure_reason,
    }
