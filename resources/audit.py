"""The audit trail: an append-only hash chain per tenant, and one (`platform`) for the operator
plane and user accounts that belong to no tenant.

Each row's `hash` is `sha256(bytes.fromhex(prev_hash) + canonical(row))` in hex; the first row
of a chain has `prev_hash` = 64 zeros. `canonical(row)` is the UTF-8 JSON object of the row's
chain, seq, at, actor, action, target, request_id, client_address and data, written with keys
sorted by code point at every level, separators `,` and `:`, non-ASCII characters as they are
(Python's `json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)`), and
`at` in UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`. In `data`, a float with an integral value below
2**53 is written as an integer, NaN and the infinities as the strings "NaN", "Infinity" and
"-Infinity", a datetime like `at`; `append` stores `data` in that form, so what is stored is
exactly what was hashed.

`audit_chain_heads` holds each chain's last seq and hash: `append` locks it, so appends to one
chain are serialised and no seq is taken twice, and `verify` compares it with the last row, so a
deleted tail shows. Changing a row breaks its hash, deleting one leaves a gap in seq; rewriting a
whole chain (hashes included) needs the head hash recorded elsewhere to show.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from resources import request_context
from resources.tables import AuditChainHead, AuditEvent, utcnow

GENESIS_HASH = "0" * 64
PLATFORM_CHAIN = "platform"
MAX_PAGE = 500
BATCH_SIZE = 1000
# Integral floats within this range are exact as integers in every JSON reader.
_EXACT_INT = 2**53

# What `verify` reports as the first broken link.
HASH_MISMATCH = "hash_mismatch"  # the row's contents were changed after it was written
PREV_HASH_MISMATCH = "prev_hash_mismatch"  # the row does not follow the one before it
SEQ_GAP = "seq_gap"  # rows are missing (deleted) or out of order
HEAD_MISMATCH = "head_mismatch"  # the chain's head and its last row disagree (tail deleted)
MALFORMED = "malformed"  # an exported line that is not a row (offline check only)


def chain_for(tenant_id: str | None) -> str:
    """The chain a tenant's events go to; events of no tenant go to `platform`."""
    return tenant_id or PLATFORM_CHAIN


# --- canonical form ---------------------------------------------------------------------------


def utc(value: datetime) -> datetime:
    """`value` as an aware UTC datetime; naive ones (SQLite returns these) are taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_at(value: datetime) -> str:
    """UTC, microseconds always written (isoformat drops them when zero)."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalise(value: Any) -> Any:
    """`value` as plain JSON whose round trip through any store gives it back unchanged."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < _EXACT_INT:
            return int(value)
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise TypeError(f"audit data keys must be strings, not {type(key).__name__}")
            out[str(key)] = normalise(item)
        return out
    if isinstance(value, list | tuple):
        return [normalise(item) for item in value]
    if isinstance(value, datetime):
        return format_at(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"audit data cannot hold a {type(value).__name__}: give it as JSON")


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        normalise(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")


@dataclass(frozen=True)
class AuditRecord:
    """The hashed fields of one row."""

    chain: str
    seq: int
    at: datetime
    actor: str
    action: str
    target: str
    request_id: str | None
    client_address: str | None
    data: Any


def record_of(row: Any) -> AuditRecord:
    """The hashed fields of an `AuditEvent` or of a result row with the same column names."""
    return AuditRecord(
        chain=row.chain,
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        request_id=row.request_id,
        client_address=row.client_address,
        data=row.data,
    )


def canonical(record: AuditRecord) -> bytes:
    return canonical_json(
        {
            "chain": record.chain,
            "seq": record.seq,
            "at": format_at(record.at),
            "actor": record.actor,
            "action": record.action,
            "target": record.target,
            "request_id": record.request_id,
            "client_address": record.client_address,
            "data": record.data,
        }
    )


def row_hash(prev_hash: str, canonical_bytes: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_bytes).hexdigest()


# --- checking a chain -------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokenLink:
    """Where a chain first breaks: `seq` is the row's (for a gap or a lost tail, the first
    missing one), `id` the row it was found at (None when the row is gone)."""

    seq: int
    id: int | None
    problem: str
    detail: str


@dataclass(frozen=True)
class VerifyResult:
    chain: str
    ok: bool
    rows: int  # rows checked
    head_seq: int
    head_hash: str | None
    first_broken: BrokenLink | None


@dataclass
class ChainChecker:
    """Checks one chain's rows in seq order, one at a time, in constant memory. `verify` and the
    offline check of an export both use it. With `allow_gaps` (a filtered export) a row after a
    gap is checked on its own: its hash, but not its link to the row before."""

    chain: str
    allow_gaps: bool = False
    rows: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS_HASH
    last_id: int | None = None
    broken: BrokenLink | None = field(default=None)

    def check(
        self, record: AuditRecord, row_id: int | None, prev_hash: str, hash_: str
    ) -> BrokenLink | None:
        if self.broken is not None:
            return self.broken
        self.rows += 1
        expected = self.last_seq + 1
        linked = record.seq == expected
        if not linked and not (self.allow_gaps and record.seq > expected):
            if record.seq > expected:
                missing = (
                    f"seq {expected}"
                    if record.seq == expected + 1
                    else f"seq {expected} to {record.seq - 1}"
                )
                detail = f"{missing} missing before seq {record.seq} (deleted)"
                return self.fail(expected, row_id, SEQ_GAP, detail)
            detail = f"seq {record.seq} out of order after seq {self.last_seq}"
            return self.fail(record.seq, row_id, SEQ_GAP, detail)
        if linked and prev_hash != self.last_hash:
            before = f"seq {self.last_seq}'s hash" if self.last_seq else "the chain's start"
            detail = f"prev_hash is not {before}: the row before was changed or replaced"
            return self.fail(record.seq, row_id, PREV_HASH_MISMATCH, detail)
        try:
            computed = row_hash(prev_hash, canonical(record))
        except (ValueError, TypeError) as exc:
            return self.fail(record.seq, row_id, HASH_MISMATCH, f"cannot be hashed: {exc}")
        if computed != hash_:
            detail = "the row's contents do not match its hash: it was changed after writing"
            return self.fail(record.seq, row_id, HASH_MISMATCH, detail)
        self.last_seq, self.last_hash, self.last_id = record.seq, hash_, row_id
        return None

    def finish(self, head_seq: int | None, head_hash: str | None) -> BrokenLink | None:
        """Compare the last row checked with the chain's head (None: the chain has no head)."""
        if self.broken is not None:
            return self.broken
        if head_seq is None:
            if self.last_seq == 0:
                return None
            detail = "the chain has rows but no head row in audit_chain_heads"
            return self.fail(self.last_seq, self.last_id, HEAD_MISMATCH, detail)
        if head_seq > self.last_seq:
            detail = (
                f"the head is at seq {head_seq} but the last row is seq {self.last_seq}: "
                f"seq {self.last_seq + 1} to {head_seq} are missing (tail deleted)"
            )
            return self.fail(self.last_seq + 1, None, HEAD_MISMATCH, detail)
        if head_seq < self.last_seq:
            detail = f"rows after the head's seq {head_seq}: the head was moved back"
            return self.fail(head_seq + 1, None, HEAD_MISMATCH, detail)
        if head_hash != self.last_hash:
            detail = f"the head's hash differs from seq {head_seq}'s: the tail was replaced"
            return self.fail(head_seq, self.last_id, HEAD_MISMATCH, detail)
        return None

    def fail(self, seq: int, row_id: int | None, problem: str, detail: str) -> BrokenLink:
        """Record the first broken link (a later one is not looked for)."""
        self.broken = BrokenLink(seq=seq, id=row_id, problem=problem, detail=detail)
        return self.broken


# --- the database -----------------------------------------------------------------------------


def _lock_head(session: Session, chain: str) -> tuple[int, str]:
    """The chain's head (seq, hash), locked until the transaction ends; created on first use."""
    dialect = session.get_bind().dialect.name
    values = {"chain": chain, "seq": 0, "hash": GENESIS_HASH, "updated_at": utcnow()}
    # Written first on every append: on SQLite a write takes the database's write lock, so the
    # head read next cannot be stale (SQLite has no FOR UPDATE).
    if dialect == "postgresql":
        session.execute(
            pg_insert(AuditChainHead)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["chain"])
        )
    elif dialect == "sqlite":
        session.execute(
            sqlite_insert(AuditChainHead)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["chain"])
        )
    else:
        raise NotImplementedError(f"the audit trail supports PostgreSQL and SQLite, not {dialect}")
    head = session.execute(
        select(AuditChainHead.seq, AuditChainHead.hash)
        .where(AuditChainHead.chain == chain)
        .with_for_update()
    ).one()
    return int(head.seq), str(head.hash)


def append(
    session: Session,
    tenant_id: str | None,
    actor: str,
    action: str,
    target: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an event to the end of its chain (the tenant's, or `platform`), stamped with the
    current request's id and client address. The chain's head stays locked until the caller's
    transaction ends, so audit late in a transaction."""
    stored = normalise(data or {})
    if not isinstance(stored, dict):
        raise TypeError("audit data must be a JSON object")
    context = request_context.current()
    chain = chain_for(tenant_id)
    head_seq, head_hash = _lock_head(session, chain)
    event = AuditEvent(
        tenant_id=tenant_id,
        chain=chain,
        seq=head_seq + 1,
        at=utcnow(),
        # Cut to the columns' sizes before hashing (PostgreSQL would refuse longer values).
        actor=actor[:200],
        action=action,
        target=target[:300],
        request_id=context.request_id[:128] if context.request_id else None,
        client_address=context.client_address[:64] if context.client_address else None,
        data=stored,
        prev_hash=head_hash,
    )
    event.hash = row_hash(head_hash, canonical(record_of(event)))
    session.add(event)
    session.flush()
    session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.chain == chain)
        .values(seq=event.seq, hash=event.hash, updated_at=event.at)
    )
    return event


_CHECKED_COLUMNS = (
    AuditEvent.id,
    AuditEvent.chain,
    AuditEvent.seq,
    AuditEvent.at,
    AuditEvent.actor,
    AuditEvent.action,
    AuditEvent.target,
    AuditEvent.request_id,
    AuditEvent.client_address,
    AuditEvent.data,
    AuditEvent.prev_hash,
    AuditEvent.hash,
)


def head(session: Session, chain: str) -> tuple[int, str] | None:
    """The chain's head (seq, hash), or None when nothing was ever appended to it."""
    row = session.execute(
        select(AuditChainHead.seq, AuditChainHead.hash).where(AuditChainHead.chain == chain)
    ).first()
    return None if row is None else (int(row.seq), str(row.hash))


def verify(session: Session, chain: str, batch_size: int = BATCH_SIZE) -> VerifyResult:
    """Check every row of `chain` in seq order, in batches, and the head against the last row.
    Rows appended while it runs are left out: the head is read first and bounds the check."""
    start = head(session, chain)
    checker = ChainChecker(chain)
    last = 0
    while checker.broken is None:
        query = (
            select(*_CHECKED_COLUMNS)
            .where(AuditEvent.chain == chain, AuditEvent.seq > last)
            .order_by(AuditEvent.seq)
            .limit(batch_size)
        )
        if start is not None:
            query = query.where(AuditEvent.seq <= start[0])
        rows = session.execute(query).all()
        for row in rows:
            if checker.check(record_of(row), row.id, row.prev_hash, row.hash) is not None:
                break
        if len(rows) < batch_size:
            break
        last = rows[-1].seq
    checker.finish(*(start or (None, None)))
    if checker.broken is None and start is not None:
        # A committed row implies a head at least as far (they commit together), so a row past
        # the head read now means the head was moved back.
        beyond = session.scalar(select(func.max(AuditEvent.seq)).where(AuditEvent.chain == chain))
        now = head(session, chain)
        if beyond is not None and now is not None and beyond > now[0]:
            detail = f"seq {beyond} exists but the head is at seq {now[0]}: the head was moved back"
            checker.fail(now[0] + 1, None, HEAD_MISMATCH, detail)
    return VerifyResult(
        chain=chain,
        ok=checker.broken is None,
        rows=checker.rows,
        head_seq=start[0] if start else 0,
        head_hash=start[1] if start else None,
        first_broken=checker.broken,
    )


@dataclass(frozen=True)
class AuditFilters:
    """What to list: `action` exact, or a prefix with a trailing `*` (`document.*`); `since`
    inclusive, `until` exclusive; naive datetimes are taken as UTC."""

    action: str | None = None
    actor: str | None = None
    target: str | None = None
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _filtered(query: Select[Any], filters: AuditFilters | None) -> Select[Any]:
    if filters is None:
        return query
    if filters.action:
        if filters.action.endswith("*"):
            prefix = filters.action[:-1]
            if prefix:
                query = query.where(AuditEvent.action.startswith(prefix, autoescape=True))
        else:
            query = query.where(AuditEvent.action == filters.action)
    if filters.actor:
        query = query.where(AuditEvent.actor == filters.actor)
    if filters.target:
        query = query.where(AuditEvent.target == filters.target)
    if filters.request_id:
        query = query.where(AuditEvent.request_id == filters.request_id)
    # UTC so that SQLite, which stores the UTC wall time as text, compares like PostgreSQL.
    if filters.since is not None:
        query = query.where(AuditEvent.at >= utc(filters.since))
    if filters.until is not None:
        query = query.where(AuditEvent.at < utc(filters.until))
    return query


def query(
    session: Session,
    chain: str,
    filters: AuditFilters | None = None,
    limit: int = 100,
    before_seq: int | None = None,
) -> list[AuditEvent]:
    """A page of `chain`'s events, newest first; pass the last one's seq as `before_seq` for
    the next page. At most MAX_PAGE a page."""
    stmt = select(AuditEvent).where(AuditEvent.chain == chain)
    if before_seq is not None:
        stmt = stmt.where(AuditEvent.seq < before_seq)
    stmt = _filtered(stmt, filters).order_by(AuditEvent.seq.desc())
    return list(session.scalars(stmt.limit(max(1, min(limit, MAX_PAGE)))).all())


def iter_events(
    session: Session,
    chain: str,
    filters: AuditFilters | None = None,
    batch_size: int = BATCH_SIZE,
) -> Iterator[AuditEvent]:
    """`chain`'s events oldest first, read in batches (for exports), up to the head as it was
    when the iteration started."""
    start = head(session, chain)
    last = 0
    while True:
        stmt = select(AuditEvent).where(AuditEvent.chain == chain, AuditEvent.seq > last)
        if start is not None:
            stmt = stmt.where(AuditEvent.seq <= start[0])
        stmt = _filtered(stmt, filters).order_by(AuditEvent.seq).limit(batch_size)
        rows = session.scalars(stmt).all()
        yield from rows
        if len(rows) < batch_size:
            return
        last = rows[-1].seq
