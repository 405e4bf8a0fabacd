"""The audit trail on PostgreSQL: the append-only trigger, edits made behind the application's
back, concurrent appends, independent chains, the 0007 backfill and offline export checks."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from api.services.audit import AuditService, verify_export
from resources import audit
from resources.database import Database, engine_for, migrate
from resources.repository import create_tenant
from resources.tables import AuditChainHead, AuditEvent


def _database(url: str) -> Database:
    db = Database(url=url)
    db.migrate()
    return db


def _tenant(db: Database, slug: str) -> str:
    with db.session() as session:
        return create_tenant(session, slug, slug.title())[0].id


def _fill(db: Database, tenant_id: str | None, count: int) -> None:
    with db.session() as session:
        for i in range(1, count + 1):
            audit.append(session, tenant_id, "alice", f"thing.step{i}", f"t{i}", {"i": i})


def _seqs(db: Database, chain: str) -> list[int]:
    with db.session() as session:
        return list(
            session.scalars(
                select(AuditEvent.seq).where(AuditEvent.chain == chain).order_by(AuditEvent.seq)
            )
        )


def _behind_the_back(url: str, statement: str, **params: object) -> None:
    """Run `statement` as the superuser with the table's user triggers switched off."""
    with engine_for(url).begin() as conn:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text(statement), params)
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


def test_the_trigger_refuses_update_delete_and_truncate(postgres_url: str) -> None:
    db = _database(postgres_url)
    tenant = _tenant(db, "acme")
    _fill(db, tenant, 3)
    for statement in (
        "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 3",
        "TRUNCATE audit_events",
    ):
        with pytest.raises(DBAPIError) as refused, db.session() as session:
            session.execute(text(statement))
        assert "audit_events is append-only" in str(refused.value)
        assert statement.split()[0] in str(refused.value)
    # through the ORM as well
    with pytest.raises(DBAPIError, match="append-only"), db.session() as session:
        row = session.scalars(select(AuditEvent).where(AuditEvent.seq == 1)).one()
        row.data = {"i": 100}
    assert _seqs(db, tenant) == [1, 2, 3]
    assert AuditService(db, tenant).verify()["ok"]


def test_an_edit_behind_the_applications_back_names_its_row(postgres_url: str) -> None:
    db = _database(postgres_url)
    tenant = _tenant(db, "acme")
    _fill(db, tenant, 10)
    assert AuditService(db, tenant).verify()["ok"]
    _behind_the_back(
        postgres_url,
        """UPDATE audit_events SET data = '{"i": 600}' WHERE chain = :c AND seq = 6""",
        c=tenant,
    )
    with db.session() as session:
        sixth = session.scalar(
            select(AuditEvent.id).where(AuditEvent.chain == tenant, AuditEvent.seq == 6)
        )
    result = AuditService(db, tenant).verify()
    assert not result["ok"] and result["rows"] == 6
    assert result["first_broken"]["seq"] == 6 and result["first_broken"]["id"] == sixth
    assert result["first_broken"]["problem"] == audit.HASH_MISMATCH
    # the trigger is back on
    with pytest.raises(DBAPIError, match="append-only"), db.session() as session:
        session.execute(text("DELETE FROM audit_events"))


def test_deleted_rows_behind_the_applications_back_are_found(postgres_url: str) -> None:
    db = _database(postgres_url)
    tenant = _tenant(db, "acme")
    _fill(db, tenant, 8)
    with engine_for(postgres_url).begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("DELETE FROM audit_events WHERE chain = :c AND seq >= 7"), {"c": tenant})
    broken = AuditService(db, tenant).verify()["first_broken"]
    assert (broken["seq"], broken["id"], broken["problem"]) == (7, None, audit.HEAD_MISMATCH)
    _behind_the_back(
        postgres_url, "DELETE FROM audit_events WHERE chain = :c AND seq = 3", c=tenant
    )
    broken = AuditService(db, tenant).verify()["first_broken"]
    assert (broken["seq"], broken["problem"]) == (3, audit.SEQ_GAP)


def test_concurrent_appends_take_every_seq_once(postgres_url: str) -> None:
    db = _database(postgres_url)
    tenant = _tenant(db, "acme")
    threads, per_thread = 8, 25
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                # half the threads write two events a transaction
                with db.session() as session:
                    audit.append(session, tenant, f"worker{n}", "thing.done", str(i))
                    if n % 2:
                        audit.append(session, tenant, f"worker{n}", "thing.also", str(i))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    total = threads * per_thread + (threads // 2) * per_thread
    assert _seqs(db, tenant) == list(range(1, total + 1))
    result = AuditService(db, tenant).verify()
    assert result["ok"] and result["rows"] == total and result["head_seq"] == total


def test_two_tenants_chains_are_independent(postgres_url: str) -> None:
    db = _database(postgres_url)
    acme, beta = _tenant(db, "acme"), _tenant(db, "beta")
    for _ in range(3):
        _fill(db, acme, 2)
        _fill(db, beta, 1)
    _fill(db, None, 2)
    assert _seqs(db, acme) == list(range(1, 7))
    assert _seqs(db, beta) == [1, 2, 3]
    assert _seqs(db, audit.PLATFORM_CHAIN) == [1, 2]
    _behind_the_back(
        postgres_url, "UPDATE audit_events SET actor = 'x' WHERE chain = :c AND seq = 2", c=beta
    )
    assert AuditService(db, acme).verify()["ok"]
    assert AuditService(db, None).verify()["ok"]
    assert AuditService(db, beta).verify()["first_broken"]["seq"] == 2
    assert [e.chain for e in AuditService(db, acme).list(limit=500)["items"]] == [acme] * 6


def test_a_tenant_with_an_audit_trail_cannot_be_deleted(postgres_url: str) -> None:
    db = _database(postgres_url)
    tenant = _tenant(db, "acme")
    _fill(db, tenant, 1)
    with pytest.raises(IntegrityError, match="audit_events"), db.session() as session:
        session.execute(text("DELETE FROM tenants WHERE id = :t"), {"t": tenant})
    assert _seqs(db, tenant) == [1]


def test_the_migration_chains_rows_written_before_it(postgres_url: str) -> None:
    migrate(postgres_url, "0006")
    with engine_for(postgres_url).begin() as conn:
        for tenant in ("t-acme", "t-beta"):
            conn.execute(
                text(
                    "INSERT INTO tenants (id, slug, name, plan, created_at) "
                    "VALUES (:t, :t, :t, 'standard', now())"
                ),
                {"t": tenant},
            )
        rows = [
            ("t-acme", "project.created", {"partition_key": "acme__h"}),
            (None, "base_model.registered", {"size_bytes": 123, "enabled": True}),
            ("t-beta", "project.created", {}),
            ("t-acme", "document.uploaded", {"score": 0.75, "whole": 3.0, "name": "Zoë"}),
            ("t-acme", "run.started", {"nested": {"b": [1, 2], "a": None}}),
            (None, "tenant.created", {}),
        ]
        for i, (tenant, action, data) in enumerate(rows):
            conn.execute(
                text(
                    "INSERT INTO audit_events (tenant_id, at, actor, action, target, data) "
                    "VALUES (:t, :at, 'admin', :a, :target, CAST(:d AS json))"
                ),
                {
                    "t": tenant,
                    "at": datetime(2026, 1, 1, 12, 0, i, i * 1000, tzinfo=UTC),
                    "a": action,
                    "target": f"x{i}",
                    "d": json.dumps(data),
                },
            )
    migrate(postgres_url)
    db = Database(url=postgres_url)
    with db.session() as session:
        order = session.execute(
            select(AuditEvent.chain, AuditEvent.seq, AuditEvent.action).order_by(AuditEvent.id)
        ).all()
        heads = dict(session.execute(select(AuditChainHead.chain, AuditChainHead.seq)).all())
    assert [tuple(r) for r in order] == [
        ("t-acme", 1, "project.created"),
        ("platform", 1, "base_model.registered"),
        ("t-beta", 1, "project.created"),
        ("t-acme", 2, "document.uploaded"),
        ("t-acme", 3, "run.started"),
        ("platform", 2, "tenant.created"),
    ]
    assert heads == {"t-acme": 3, "t-beta": 1, "platform": 2}
    for tenant in ("t-acme", "t-beta", None):
        assert AuditService(db, tenant).verify()["ok"]
    # new events continue the backfilled chain, and the trigger guards it
    _fill(db, "t-acme", 2)
    assert _seqs(db, "t-acme") == [1, 2, 3, 4, 5]
    assert AuditService(db, "t-acme").verify()["rows"] == 5
    with pytest.raises(DBAPIError, match="append-only"), db.session() as session:
        session.execute(text("UPDATE audit_events SET actor = 'x'"))


def test_an_export_verifies_offline_and_an_edited_line_is_found(postgres_url: str) -> None:
    db = _database(postgres_url)
    tenant = _tenant(db, "acme")
    with db.session() as session:
        audit.append(session, tenant, "alice", "document.uploaded", "d1", {"bytes": 1024})
    _fill(db, tenant, 6)
    service = AuditService(db, tenant)
    exported = b"".join(service.export_jsonl())
    lines = exported.splitlines(keepends=True)
    verified = service.verify()
    assert len(lines) == 7 and verified["ok"]
    assert verify_export(lines, verified["head_seq"], verified["head_hash"]) == verified

    edited = json.loads(lines[4])
    edited["target"] = "somewhere-else"
    lines[4] = json.dumps(edited).encode() + b"\n"
    result = verify_export(lines)
    assert not result["ok"] and result["rows"] == 5
    assert result["first_broken"]["seq"] == 5
    assert result["first_broken"]["problem"] == audit.HASH_MISMATCH
    with db.session() as session:
        count = session.scalar(select(func.count()).select_from(AuditEvent))
    assert count == 7
