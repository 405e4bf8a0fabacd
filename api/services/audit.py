"""The audit trail as tenants and the operator read it: pages of events, a JSONL export and a
check of the chain (`AuditService`; tenant_id None is the operator's `platform` chain).

Checking an export offline: each line of `export_jsonl` is one event, a JSON object with its
id, chain, seq, at, actor, action, target, request_id, client_address, data, prev_hash and hash.
`verify_export(open("audit.jsonl", "rb"))` checks it row by row with the same check `verify`
runs on the database (resources/audit.py `ChainChecker`) and returns the same dict as
`AuditService.verify`. An unfiltered export holds the whole chain from seq 1: pass the
`head_seq` and `head_hash` that `verify` reported to also prove nothing was cut off its end. A
filtered export has gaps: pass `allow_gaps=True`, and each row's own hash is checked (its link
to the row before only where that row is in the file too).

Without this code: `hash == sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()`, where
`canonical` is the UTF-8 JSON of the line's chain, seq, at, actor, action, target, request_id,
client_address and data, keys sorted, separators `,` and `:`, non-ASCII as is; the first row's
prev_hash is 64 zeros and each row's prev_hash is the hash of the row before (seq - 1).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from api import schemas
from api.errors import BadRequest
from resources import audit
from resources.audit import AuditFilters, AuditRecord, ChainChecker, VerifyResult
from resources.database import Database
from resources.tables import AuditEvent

DEFAULT_PAGE = 100


def _invalid(message: str) -> BadRequest:
    return BadRequest(message, code="invalid_audit_query")


def check_filters(filters: AuditFilters | None) -> None:
    """BadRequest naming the filter to fix."""
    if filters is None:
        return
    if filters.action and "*" in filters.action[:-1]:
        raise _invalid("action takes one `*`, at the end, for a prefix (e.g. document.*)")
    if (
        filters.since is not None
        and filters.until is not None
        and audit.utc(filters.since) >= audit.utc(filters.until)
    ):
        raise _invalid("since must be earlier than until")


def event_struct(row: AuditEvent) -> schemas.AuditEvent:
    return schemas.AuditEvent(
        id=row.id,
        chain=row.chain,
        seq=row.seq,
        at=audit.utc(row.at),
        actor=row.actor,
        action=row.action,
        target=row.target,
        request_id=row.request_id,
        client_address=row.client_address,
        data=row.data,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def export_line(row: AuditEvent) -> bytes:
    """One JSONL line: the row's hashed fields as hashed, with its id and both hashes."""
    line = {
        "id": row.id,
        "chain": row.chain,
        "seq": row.seq,
        "at": audit.format_at(row.at),
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "request_id": row.request_id,
        "client_address": row.client_address,
        "data": audit.normalise(row.data),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }
    return (
        json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        + b"\n"
    )


def result_dict(result: VerifyResult) -> dict[str, Any]:
    """ok, chain, rows, head_seq, head_hash, first_broken ({seq, id, problem, detail} | None)."""
    return dataclasses.asdict(result)


def _line_record(obj: Any) -> tuple[AuditRecord, int | None, str, str]:
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    for key in ("chain", "actor", "action", "target", "prev_hash", "hash", "at"):
        if not isinstance(obj.get(key), str):
            raise ValueError(f"{key} missing or not a string")
    if not isinstance(obj.get("seq"), int) or isinstance(obj["seq"], bool):
        raise ValueError("seq missing or not an integer")
    record = AuditRecord(
        chain=obj["chain"],
        seq=obj["seq"],
        at=datetime.fromisoformat(obj["at"]),
        actor=obj["actor"],
        action=obj["action"],
        target=obj["target"],
        request_id=obj.get("request_id"),
        client_address=obj.get("client_address"),
        data=obj.get("data"),
    )
    row_id = obj.get("id")
    return record, row_id if isinstance(row_id, int) else None, obj["prev_hash"], obj["hash"]


def verify_export(
    lines: Iterable[bytes | str],
    head_seq: int | None = None,
    head_hash: str | None = None,
    allow_gaps: bool = False,
) -> dict[str, Any]:
    """Check an `export_jsonl` file line by line (see the module docstring); the result has the
    shape of `AuditService.verify`'s."""
    checker: ChainChecker | None = None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record, row_id, prev_hash, hash_ = _line_record(json.loads(raw))
        except ValueError as exc:
            checker = checker or ChainChecker("", allow_gaps)
            seq = checker.last_seq + 1
            checker.fail(seq, None, audit.MALFORMED, f"line {number}: {exc}")
            break
        if checker is None:
            checker = ChainChecker(record.chain, allow_gaps)
        if record.chain != checker.chain:
            detail = f"line {number} is of chain {record.chain!r}, not {checker.chain!r}"
            checker.fail(record.seq, row_id, audit.MALFORMED, detail)
            break
        if checker.check(record, row_id, prev_hash, hash_) is not None:
            break
    checker = checker or ChainChecker("", allow_gaps)
    if head_seq is not None:
        checker.finish(head_seq, head_hash)
    else:
        head_seq, head_hash = checker.last_seq, checker.last_hash if checker.last_seq else None
    return result_dict(
        VerifyResult(
            chain=checker.chain,
            ok=checker.broken is None,
            rows=checker.rows,
            head_seq=head_seq,
            head_hash=head_hash,
            first_broken=checker.broken,
        )
    )


class AuditService:
    """Reads one audit chain: the tenant's, or with tenant_id None the platform's."""

    def __init__(self, db: Database, tenant_id: str | None) -> None:
        self.db = db
        self.chain = audit.chain_for(tenant_id)

    def list(
        self,
        filters: AuditFilters | None = None,
        limit: int = DEFAULT_PAGE,
        before_seq: int | None = None,
    ) -> dict[str, Any]:
        """A page, newest first: {items: [schemas.AuditEvent], next_before_seq: int | None}."""
        if not 1 <= limit <= audit.MAX_PAGE:
            raise _invalid(f"limit must be 1 to {audit.MAX_PAGE}")
        if before_seq is not None and before_seq < 1:
            raise _invalid("before_seq must be a positive seq (next_before_seq of a page)")
        check_filters(filters)
        with self.db.session() as session:
            rows = audit.query(session, self.chain, filters, limit, before_seq)
            more = bool(rows) and len(rows) == limit
            if more:
                more = bool(audit.query(session, self.chain, filters, 1, rows[-1].seq))
            return {
                "items": [event_struct(r) for r in rows],
                "next_before_seq": rows[-1].seq if more else None,
            }

    def export_jsonl(self, filters: AuditFilters | None = None) -> Iterator[bytes]:
        """The chain's events oldest first, one JSON object a line (see `verify_export`)."""
        check_filters(filters)  # before the first byte is sent
        return self._export(filters)

    def _export(self, filters: AuditFilters | None) -> Iterator[bytes]:
        with self.db.session() as session:
            for row in audit.iter_events(session, self.chain, filters):
                yield export_line(row)

    def verify(self) -> dict[str, Any]:
        """ok, chain, rows, head_seq, head_hash, first_broken ({seq, id, problem, detail})."""
        with self.db.session() as session:
            return result_dict(audit.verify(session, self.chain))
