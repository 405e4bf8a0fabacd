"""The audit trail's hash chain: its canonical form, appends, and what verification finds when
rows are edited or deleted behind the application's back (SQLite; PostgreSQL in
tests/integration/test_audit_trail.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text

from api.errors import BadRequest
from api.services.audit import AuditService, verify_export
from resources import audit, request_context
from resources.audit import AuditFilters, AuditRecord
from resources.database import Database, _engines
from resources.repository import TenantScope, create_tenant
from resources.tables import AuditChainHead, AuditEvent


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path}/t.db"
    database = Database(url=url)
    database.migrate()
    yield database
    engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()


def _record(at: datetime, data: object = None) -> AuditRecord:
    return AuditRecord(
        chain="t1",
        seq=3,
        at=at,
        actor="user:a@example.com",
        action="document.uploaded",
        target="doc-1",
        request_id="req-1",
        client_address="10.0.0.1",
        data=data if data is not None else {"size": 12},
    )


def test_canonical_form_is_the_same_for_naive_and_aware_datetimes() -> None:
    instant = datetime(2026, 3, 1, 12, 30, 5, 120000, tzinfo=UTC)
    forms = {
        audit.canonical(_record(at))
        for at in (
            instant,
            instant.replace(tzinfo=None),  # SQLite gives back naive UTC
            instant.astimezone(timezone(timedelta(hours=2))),  # PostgreSQL: the session's zone
            instant.astimezone(timezone(timedelta(hours=-7, minutes=-30))),
        )
    }
    assert len(forms) == 1
    assert b'"at":"2026-03-01T12:30:05.120000Z"' in forms.pop()
    # microseconds are written even when they are zero
    assert audit.format_at(datetime(2026, 3, 1, 12, 0)) == "2026-03-01T12:00:00.000000Z"


def test_canonical_form_is_compact_sorted_utf8_and_float_safe() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    first = audit.canonical(_record(at, {"b": [1.0, (2, 3)], "a": "é", "n": float("nan")}))
    second = audit.canonical(_record(at, {"n": "NaN", "a": "é", "b": [1, [2, 3]]}))
    assert first == second
    assert first.startswith(b'{"action":"document.uploaded","actor":')
    assert b'"data":{"a":"\xc3\xa9","b":[1,[2,3]],"n":"NaN"}' in first
    assert b" " not in first.replace(b"document.uploaded", b"")
    assert audit.normalise({"x": 0.1, "y": 1e300, 2: True}) == {"x": 0.1, "y": 1e300, "2": True}
    with pytest.raises(TypeError):
        audit.canonical(_record(at, {"s": {1, 2}}))


def test_row_hash_chains_on_the_previous_hash() -> None:
    body = audit.canonical(_record(datetime(2026, 3, 1, tzinfo=UTC)))
    first = audit.row_hash(audit.GENESIS_HASH, body)
    assert len(first) == 64 and first != audit.row_hash(first, body)


def _fill(db: Database, tenant_id: str, count: int = 7) -> None:
    with db.session() as session:
        for i in range(1, count + 1):
            audit.append(session, tenant_id, "alice", f"thing.step{i}", f"t{i}", {"i": i})


@pytest.fixture
def tenant(db: Database) -> str:
    with db.session() as session:
        row, _ = create_tenant(session, "acme", "Acme")
        return row.id


def _verify(db: Database, chain: str, batch_size: int = 3) -> audit.VerifyResult:
    with db.session() as session:
        return audit.verify(session, chain, batch_size=batch_size)


def _sql(db: Database, statement: str, **params: object) -> None:
    with db.session() as session:
        session.execute(text(statement), params)


def _id_of(db: Database, chain: str, seq: int) -> int:
    with db.session() as session:
        row_id = session.scalar(
            select(AuditEvent.id).where(AuditEvent.chain == chain, AuditEvent.seq == seq)
        )
        assert row_id is not None
        return row_id


def test_appends_form_a_chain_that_verifies(db: Database, tenant: str) -> None:
    _fill(db, tenant)
    with db.session() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.chain == tenant).order_by(AuditEvent.seq)
        ).all()
        head = session.get(AuditChainHead, tenant)
        assert head is not None
        assert [r.seq for r in rows] == list(range(1, 8))
        assert rows[0].prev_hash == audit.GENESIS_HASH
        assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
        assert (head.seq, head.hash) == (7, rows[-1].hash)
    result = _verify(db, tenant)
    assert result.ok and result.rows == 7 and result.head_seq == 7
    assert result.first_broken is None


def test_tenant_scope_audit_and_the_platform_chain(db: Database, tenant: str) -> None:
    with db.session() as session:
        TenantScope(session, tenant).audit("alice", "project.created", "handbook")
        # create_tenant's own key creation did not audit: the tenant's chain starts here
        audit.append(session, None, "admin", "base_model.registered", "smollm2")
        TenantScope(session, tenant).audit("alice", "project.updated", "handbook")
    with db.session() as session:
        mine = audit.query(session, tenant)
        platform = audit.query(session, audit.PLATFORM_CHAIN)
    assert [(e.seq, e.action) for e in mine] == [(2, "project.updated"), (1, "project.created")]
    assert [(e.seq, e.tenant_id) for e in platform] == [(1, None)]
    assert _verify(db, tenant).ok and _verify(db, audit.PLATFORM_CHAIN).ok


def test_append_stamps_the_request_and_stores_what_it_hashed(db: Database, tenant: str) -> None:
    with (
        request_context.bound(request_id="req-abcdef12", client_address="203.0.113.9"),
        db.session() as session,
    ):
        audit.append(session, tenant, "alice", "run.started", "r1", {"lr": 2.0, "x": [0.5]})
    with db.session() as session:
        row = session.scalars(select(AuditEvent).where(AuditEvent.chain == tenant)).one()
    assert (row.request_id, row.client_address) == ("req-abcdef12", "203.0.113.9")
    assert row.data == {"lr": 2, "x": [0.5]}
    assert row.hash == audit.row_hash(row.prev_hash, audit.canonical(audit.record_of(row)))


EDITS = {
    "at": "at = '2020-01-01 00:00:00.000000'",
    "actor": "actor = 'mallory'",
    "action": "action = 'thing.other'",
    "target": "target = 'elsewhere'",
    "request_id": "request_id = 'req-forged01'",
    "client_address": "client_address = '198.51.100.1'",
    "data": """data = '{"i": 999}'""",
    "hash": "hash = '" + "a" * 64 + "'",
}


@pytest.mark.parametrize("column", sorted(EDITS))
def test_an_edited_field_is_found_at_its_row(db: Database, tenant: str, column: str) -> None:
    _fill(db, tenant)
    _sql(db, f"UPDATE audit_events SET {EDITS[column]} WHERE chain = :c AND seq = 4", c=tenant)
    result = _verify(db, tenant)
    assert not result.ok and result.first_broken is not None
    assert (result.first_broken.seq, result.first_broken.problem) == (4, audit.HASH_MISMATCH)
    assert result.first_broken.id == _id_of(db, tenant, 4)


def test_an_edited_prev_hash_is_found(db: Database, tenant: str) -> None:
    _fill(db, tenant)
    _sql(
        db,
        "UPDATE audit_events SET prev_hash = :h WHERE chain = :c AND seq = 5",
        h="b" * 64,
        c=tenant,
    )
    broken = _verify(db, tenant).first_broken
    assert broken is not None and (broken.seq, broken.problem) == (5, audit.PREV_HASH_MISMATCH)


def test_a_row_rewritten_with_its_hash_breaks_the_next_link(db: Database, tenant: str) -> None:
    _fill(db, tenant)
    with db.session() as session:
        row = session.scalars(
            select(AuditEvent).where(AuditEvent.chain == tenant, AuditEvent.seq == 3)
        ).one()
        row.actor = "mallory"
        row.hash = audit.row_hash(row.prev_hash, audit.canonical(audit.record_of(row)))
    broken = _verify(db, tenant).first_broken
    assert broken is not None and (broken.seq, broken.problem) == (4, audit.PREV_HASH_MISMATCH)


def test_a_deleted_middle_row_is_a_gap(db: Database, tenant: str) -> None:
    _fill(db, tenant)
    after = _id_of(db, tenant, 5)
    _sql(db, "DELETE FROM audit_events WHERE chain = :c AND seq = 4", c=tenant)
    broken = _verify(db, tenant).first_broken
    assert broken is not None
    assert (broken.seq, broken.id, broken.problem) == (4, after, audit.SEQ_GAP)


def test_a_deleted_first_row_is_a_gap(db: Database, tenant: str) -> None:
    _fill(db, tenant)
    _sql(db, "DELETE FROM audit_events WHERE chain = :c AND seq = 1", c=tenant)
    broken = _verify(db, tenant).first_broken
    assert broken is not None and (broken.seq, broken.problem) == (1, audit.SEQ_GAP)


def test_a_deleted_tail_does_not_match_the_head(db: Database, tenant: str) -> None:
    _fill(db, tenant)
    _sql(db, "DELETE FROM audit_events WHERE chain = :c AND seq >= 6", c=tenant)
    result = _verify(db, tenant)
    assert result.first_broken is not None and result.rows == 5
    assert (result.first_broken.seq, result.first_broken.id) == (6, None)
    assert result.first_broken.problem == audit.HEAD_MISMATCH


def test_a_head_moved_back_is_found(db: Database, tenant: str) -> None:
    _fill(db, tenant)
    with db.session() as session:
        fifth = session.scalars(
            select(AuditEvent).where(AuditEvent.chain == tenant, AuditEvent.seq == 5)
        ).one()
        _sql(
            db,
            "UPDATE audit_chain_heads SET seq = 5, hash = :h WHERE chain = :c",
            h=fifth.hash,
            c=tenant,
        )
    broken = _verify(db, tenant).first_broken
    assert broken is not None and (broken.seq, broken.problem) == (6, audit.HEAD_MISMATCH)


def test_chains_are_independent(db: Database, tenant: str) -> None:
    with db.session() as session:
        other, _ = create_tenant(session, "beta", "Beta")
        other_id = other.id
    _fill(db, tenant, 3)
    _fill(db, other_id, 2)
    _fill(db, tenant, 2)
    with db.session() as session:
        assert [e.seq for e in audit.query(session, tenant)] == [5, 4, 3, 2, 1]
        assert [e.seq for e in audit.query(session, other_id)] == [2, 1]
    _sql(db, "UPDATE audit_events SET actor = 'x' WHERE chain = :c AND seq = 1", c=other_id)
    assert _verify(db, tenant).ok and not _verify(db, other_id).ok


def test_query_filters_and_pages_newest_first(db: Database, tenant: str) -> None:
    with db.session() as session:
        for i in range(6):
            action = "document.uploaded" if i % 2 else "run.started"
            with request_context.bound(request_id=f"req-{i:08d}"):
                audit.append(session, tenant, f"user{i % 3}", action, f"t{i}")
        audit.append(session, tenant, "user0", "document_x", "t6")  # `_` is not a wildcard
    with db.session() as session:

        def seqs(filters: AuditFilters | None = None, **kw: object) -> list[int]:
            return [e.seq for e in audit.query(session, tenant, filters, **kw)]  # type: ignore[arg-type]

        assert seqs() == [7, 6, 5, 4, 3, 2, 1]
        assert seqs(AuditFilters(action="document.*")) == [6, 4, 2]
        assert seqs(AuditFilters(action="document_*")) == [7]
        assert seqs(AuditFilters(action="run.started")) == [5, 3, 1]
        assert seqs(AuditFilters(action="*")) == [7, 6, 5, 4, 3, 2, 1]
        assert seqs(AuditFilters(actor="user1")) == [5, 2]
        assert seqs(AuditFilters(target="t3")) == [4]
        assert seqs(AuditFilters(request_id="req-00000002")) == [3]
        assert seqs(limit=3) == [7, 6, 5]
        assert seqs(limit=3, before_seq=5) == [4, 3, 2]
        assert seqs(AuditFilters(action="document.*"), limit=2, before_seq=6) == [4, 2]
        middle = audit.query(session, tenant, AuditFilters(target="t3"))[0].at
        assert seqs(AuditFilters(since=middle)) == [7, 6, 5, 4]
        assert seqs(AuditFilters(until=middle)) == [3, 2, 1]
        # the same instant in another zone selects the same rows
        east = middle.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=5)))
        assert seqs(AuditFilters(since=east)) == [7, 6, 5, 4]
        assert len(audit.query(session, tenant, limit=10_000)) == 7
        assert [e.seq for e in audit.iter_events(session, tenant, batch_size=2)] == list(
            range(1, 8)
        )


def test_service_pages_and_refuses_bad_queries(db: Database, tenant: str) -> None:
    _fill(db, tenant, 5)
    service = AuditService(db, tenant)
    page = service.list(limit=2)
    assert [e.seq for e in page["items"]] == [5, 4] and page["next_before_seq"] == 4
    page = service.list(limit=2, before_seq=page["next_before_seq"])
    assert [e.seq for e in page["items"]] == [3, 2] and page["next_before_seq"] == 2
    page = service.list(limit=2, before_seq=2)
    assert [e.seq for e in page["items"]] == [1] and page["next_before_seq"] is None
    assert service.list(limit=5)["next_before_seq"] is None
    assert page["items"][0].at.tzinfo is not None
    for bad in ({"limit": 0}, {"limit": 501}, {"before_seq": 0}):
        with pytest.raises(BadRequest) as caught:
            service.list(**bad)  # type: ignore[arg-type]
        assert caught.value.code == "invalid_audit_query"
    with pytest.raises(BadRequest):
        service.export_jsonl(AuditFilters(action="doc*ument"))
    now = datetime.now(UTC)
    with pytest.raises(BadRequest):
        service.list(AuditFilters(since=now, until=now - timedelta(seconds=1)))
    assert AuditService(db, None).verify() == {
        "chain": "platform",
        "ok": True,
        "rows": 0,
        "head_seq": 0,
        "head_hash": None,
        "first_broken": None,
    }


def test_export_verifies_offline_and_an_edited_line_is_found(db: Database, tenant: str) -> None:
    with db.session() as session:
        audit.append(session, tenant, "alice", "a.one", "x", {"score": 0.25, "name": "Zoë"})
    _fill(db, tenant, 4)
    service = AuditService(db, tenant)
    lines = list(service.export_jsonl())
    verified = service.verify()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3, 4, 5]
    assert verify_export(lines, verified["head_seq"], verified["head_hash"]) == verified
    assert verified["ok"] and verified["rows"] == 5

    edited = [json.loads(line) for line in lines]
    edited[2]["data"]["i"] = 99
    tampered = [json.dumps(obj).encode() for obj in edited]
    result = verify_export(tampered)
    assert not result["ok"]
    assert result["first_broken"]["seq"] == 3
    assert result["first_broken"]["problem"] == audit.HASH_MISMATCH
    assert result["first_broken"]["id"] == edited[2]["id"]

    missing = verify_export(lines[:2] + lines[3:])["first_broken"]
    assert (missing["seq"], missing["problem"]) == (3, audit.SEQ_GAP)
    cut = verify_export(lines[:4], verified["head_seq"], verified["head_hash"])["first_broken"]
    assert (cut["seq"], cut["problem"]) == (5, audit.HEAD_MISMATCH)
    garbled = verify_export([lines[0], b"{not json\n"])["first_broken"]
    assert (garbled["seq"], garbled["problem"]) == (2, audit.MALFORMED)

    only = list(service.export_jsonl(AuditFilters(action="thing.step2")))
    assert [json.loads(line)["seq"] for line in only] == [3]
    assert not verify_export(only)["ok"]  # starts at seq 3: not the whole chain
    assert verify_export(only, allow_gaps=True)["ok"]


def test_concurrent_appends_on_sqlite_take_every_seq_once(db: Database, tenant: str) -> None:
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(10):
                with db.session() as session:
                    if n % 2:  # a read first: the append must still see the latest head
                        session.execute(text("SELECT count(*) FROM tenants")).all()
                    audit.append(session, tenant, f"worker{n}", "thing.done", str(i))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    result = _verify(db, tenant)
    assert result.ok and result.rows == 40 and result.head_seq == 40
