"""Rows -> response structs."""

from __future__ import annotations

from collections.abc import Sequence

from api import schemas
from assets.failures import FAILURE_EVENT_KINDS, failure_of_event
from resources import tables
from resources.repository import partition_key


def tenant(row: tables.Tenant) -> schemas.Tenant:
    return schemas.Tenant(id=row.id, slug=row.slug, name=row.name, created_at=row.created_at)


def project(row: tables.Project, tenant_slug: str) -> schemas.Project:
    return schemas.Project(
        id=row.id,
        slug=row.slug,
        name=row.name,
        partition_key=partition_key(tenant_slug, row.slug),
        settings=row.settings or {},
        created_at=row.created_at,
    )


def document(row: tables.Document) -> schemas.Document:
    return schemas.Document(
        id=row.id,
        filename=row.filename,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        declared_type=row.declared_type,
        detected_type=row.detected_type,
        status=row.status,
        failure_reason=row.failure_reason,
        page_count=row.page_count,
        word_count=row.word_count,
        duplicate_of=row.duplicate_of,
        created_at=row.created_at,
    )


def run(
    row: tables.Run,
    events: Sequence[tables.RunEvent] | None = None,
    failure_events: Sequence[tables.RunEvent] | None = None,
) -> schemas.Run:
    """The run with its timeline (`events`, when given). `failure` explains a failed run from
    its timeline: from `failure_events` when given (a listing passes the few events that
    matter without the whole timeline), otherwise from `events`."""
    explained = failure_event(failure_events if failure_events is not None else events or [])
    return schemas.Run(
        id=row.id,
        kind=row.kind,
        status=row.status,
        dagster_run_id=row.dagster_run_id,
        config=row.config or {},
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        events=[
            schemas.RunEvent(
                at=e.at, kind=e.kind, stage=e.stage, message=e.message, data=e.data or {}
            )
            for e in events or []
        ],
        failure=run_failure(explained) if row.status == "failed" and explained else None,
    )


# The kinds of event failure_event() reads (a listing loads only these).
FAILURE_CONTEXT_KINDS = (*FAILURE_EVENT_KINDS, "status", "stage_started")


def current_attempt(events: Sequence[tables.RunEvent]) -> list[tables.RunEvent]:
    """The events since the run was last queued: a retried run's earlier failures are history."""
    events = list(events)
    start = 0
    for i, e in enumerate(events):
        if e.kind == "status" and (e.data or {}).get("to") == "queued":
            start = i
    return events[start:]


def failure_event(events: Sequence[tables.RunEvent]) -> tables.RunEvent | None:
    """The event that best explains why the run failed: the latest `check_failed`,
    `stage_failed`, `promotion_blocked` or `run_failed` event of the current attempt, leaving
    out a stage's failure that Dagster retried (a later start of the same stage)."""
    attempt = current_attempt(events)
    for i in range(len(attempt) - 1, -1, -1):
        event = attempt[i]
        if event.kind not in FAILURE_EVENT_KINDS:
            continue
        retried = any(
            later.kind == "stage_started" and later.stage == event.stage
            for later in attempt[i + 1 :]
        )
        if not retried:
            return event
    return None


def run_failure(event: tables.RunEvent) -> schemas.RunFailure:
    return schemas.RunFailure(
        **failure_of_event(event.kind, event.stage, event.message, event.data)
    )


def deployment(row: tables.Deployment, tenant_slug: str, project_slug: str) -> schemas.Deployment:
    return schemas.Deployment(
        version=row.version,
        model=f"{tenant_slug}/{project_slug}@{row.version}",
        status=row.status,
        base_model=row.base_model,
        adapter_key=row.adapter_key,
        dataset_version=row.dataset_version,
        metrics=row.metrics or {},
        created_at=row.created_at,
        activated_at=row.activated_at,
        runtime=dict((row.manifest or {}).get("runtime") or {"kind": "transformers"}),
        adapter_version=(row.manifest or {}).get("adapter_version"),
        index_version=(row.manifest or {}).get("index_version"),
        gguf_lora=bool(((row.manifest or {}).get("gguf_lora") or {}).get("key")),
        gate=(row.manifest or {}).get("gate"),
    )


def evaluation(row: tables.Evaluation) -> schemas.Evaluation:
    return schemas.Evaluation(
        id=row.id,
        kind=row.kind,
        adapter_version=row.adapter_version,
        deployment_version=row.deployment_version,
        compared_with=row.compared_with,
        dataset_version=row.dataset_version,
        questions=row.questions,
        passed=row.passed,
        reasons=list(row.reasons or []),
        summary=row.summary or {},
        report_key=row.report_key,
        dagster_run_id=row.dagster_run_id,
        created_at=row.created_at,
    )


PREVIEW_CHARS = 2000


def document_detail(
    row: tables.Document, normalized: dict | None, screened: dict | None
) -> schemas.DocumentDetail:
    """The preview shows the text as it flows into examples: redacted where the policy says so,
    and nothing at all for blocked or unscreened documents."""
    pages = [
        schemas.PageInfo(
            number=p["number"],
            method=p.get("method", "text"),
            ocr_confidence=p.get("ocr_confidence"),
            characters=len(p.get("text", "")),
        )
        for p in (normalized or {}).get("pages", [])
    ]
    preview = None
    if screened and screened.get("status") in ("redacted", "clean", "allowed"):
        preview = "\n\n".join(p["text"] for p in screened.get("pages", []))[:PREVIEW_CHARS]
    return schemas.DocumentDetail(
        document=document(row),
        metadata=row.meta or {},
        pages=pages,
        scan_status=row.scan_status,
        scan_detail=row.scan_detail,
        language=row.language,
        quality_score=row.quality_score,
        quality_reasons=list((row.meta or {}).get("quality_reasons", [])),
        redaction_status=row.redaction_status,
        pii_summary=row.pii_summary or {},
        similarity=row.similarity,
        redacted_preview=preview,
    )


def example(row: tables.DatasetExample) -> schemas.Example:
    return schemas.Example(
        id=row.id,
        key=row.key,
        split=row.split,
        kind=row.kind,
        generator=row.generator,
        document_id=row.document_id,
        question=row.question,
        answer=row.answer,
        messages=list(row.messages or []),
        citations=list(row.citations or []),
        scores=row.scores or {},
        status=row.status,
        review_reason=row.review_reason,
        duplicate_of=row.duplicate_of,
        reviewed_by=row.reviewed_by,
        reviewed_at=row.reviewed_at,
        original=row.original or {},
    )


def dataset_version(row: tables.DatasetVersion) -> schemas.DatasetVersion:
    return schemas.DatasetVersion(
        version=row.version,
        generation=row.generation,
        created_at=row.created_at,
        counts=(row.manifest or {}).get("counts", {}),
        manifest_key=row.manifest_key,
    )
