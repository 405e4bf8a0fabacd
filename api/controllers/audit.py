"""The tenant's audit trail: filtered pages, a JSONL export and the chain's verification."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get

from api import schemas
from api.errors import BadRequest
from api.schemas import checked_parameter
from api.security import requires_operator, requires_scope
from api.services.audit import AuditService
from api.streams import Stream
from resources.audit import MAX_PAGE, AuditFilters
from resources.database import Database

# A trailing `*` matches a prefix; anywhere else it is refused.
Action = Annotated[str | None, checked_parameter(pattern=r"^[^*]*\*?$")]
Limit = Annotated[int, checked_parameter(minimum=1, maximum=MAX_PAGE)]
BeforeSeq = Annotated[int | None, checked_parameter(minimum=1)]
Format = Annotated[str, checked_parameter(enum=["json", "jsonl"])]
# An RFC 3339 date-time. Read as text: Litestar's lenient conversion would also take a number
# of seconds ("0.5"), which the document does not offer.
Instant = Annotated[str | None, checked_parameter(format="date-time")]


def instant(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    refused = BadRequest(
        f"{name} must be an RFC 3339 date-time with its offset, e.g. 2026-01-31T09:00:00Z",
        code="invalid_audit_query",
    )
    try:
        parsed = msgspec.convert(value, datetime, strict=True)
    except msgspec.ValidationError as exc:
        raise refused from exc
    if parsed.tzinfo is None:
        raise refused
    return parsed


def filters(
    action: str | None,
    actor: str | None,
    target: str | None,
    request_id: str | None,
    since: str | None,
    until: str | None,
) -> AuditFilters:
    return AuditFilters(
        action, actor, target, request_id, instant(since, "since"), instant(until, "until")
    )


def _page_or_export(
    service: AuditService,
    chosen: AuditFilters,
    limit: int,
    before_seq: int | None,
    format: str,
) -> schemas.AuditPage | Stream:
    if format == "jsonl":
        lines: Iterator[bytes] = service.export_jsonl(chosen)
        return Stream(
            lines,
            media_type="application/x-ndjson",
            headers={"content-disposition": 'attachment; filename="audit.jsonl"'},
        )
    if format != "json":
        raise BadRequest("format must be json or jsonl", code="invalid_audit_query")
    page = service.list(chosen, limit, before_seq)
    return schemas.AuditPage(**page)


class AuditController(Controller):
    path = "/v1/audit"
    tags = ["audit"]
    guards = [requires_scope("admin")]

    @get("/", operation_id="listAuditEvents", sync_to_thread=True)
    def list(
        self,
        audit_trail: AuditService,
        action: Action = None,
        actor: str | None = None,
        target: str | None = None,
        request_id: str | None = None,
        since: Instant = None,
        until: Instant = None,
        limit: Limit = 100,
        before_seq: BeforeSeq = None,
        format: Format = "json",
    ) -> schemas.AuditPage | Stream:
        """The tenant's audit events, newest first (`before_seq` pages back; `action` takes a
        trailing `*` for a prefix, e.g. `member.*`); `format=jsonl` exports every matching event
        oldest first, each with its seq and hashes, to verify offline."""
        chosen = filters(action, actor, target, request_id, since, until)
        return _page_or_export(audit_trail, chosen, limit, before_seq, format)

    @get("/verify", operation_id="verifyAuditTrail", sync_to_thread=True)
    def verify(self, audit_trail: AuditService) -> schemas.AuditVerification:
        """Recompute the tenant's hash chain: `ok`, and otherwise the first broken link (its seq
        and what is wrong: an edited row, a deleted one, a cut-off end)."""
        return schemas.AuditVerification(**audit_trail.verify())


class PlatformAuditController(Controller):
    path = "/v1/admin/audit"
    tags = ["admin"]
    guards = [requires_operator]

    @get("/", operation_id="listPlatformAuditEvents", sync_to_thread=True)
    def list(
        self,
        db: Database,
        action: Action = None,
        actor: str | None = None,
        target: str | None = None,
        request_id: str | None = None,
        since: Instant = None,
        until: Instant = None,
        limit: Limit = 100,
        before_seq: BeforeSeq = None,
        format: Format = "json",
    ) -> schemas.AuditPage | Stream:
        """The platform's audit chain: sign-ins and their failures, account changes, operator
        actions (plans, base models, users)."""
        chosen = filters(action, actor, target, request_id, since, until)
        return _page_or_export(AuditService(db, None), chosen, limit, before_seq, format)

    @get("/verify", operation_id="verifyPlatformAuditTrail", sync_to_thread=True)
    def verify(self, db: Database) -> schemas.AuditVerification:
        return schemas.AuditVerification(**AuditService(db, None).verify())
