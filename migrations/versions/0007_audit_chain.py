"""audit chain: audit_events hash-chained per tenant (and `platform`), with request id and
client address; audit_chain_heads; on PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE
of audit_events; its tenant foreign key no longer cascades

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from resources.audit import GENESIS_HASH, PLATFORM_CHAIN, AuditRecord, canonical, row_hash

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BATCH = 1000
# Names SQLite's unnamed foreign key so batch mode can drop it (PostgreSQL has its own name).
NAMING = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}

audit_events = sa.table(
    "audit_events",
    sa.column("id", sa.Integer()),
    sa.column("tenant_id", sa.String()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("target", sa.String()),
    sa.column("data", sa.JSON()),
    sa.column("chain", sa.String()),
    sa.column("seq", sa.BigInteger()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)

APPEND_ONLY_FUNCTION = """
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused (the audit trail is a hash chain; '
        'record a correction as a new event instead)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _tenant_fk_name(bind: sa.engine.Connection) -> str:
    for fk in sa.inspect(bind).get_foreign_keys("audit_events"):
        if fk["referred_table"] == "tenants" and fk.get("name"):
            return str(fk["name"])
    return "fk_audit_events_tenant_id_tenants"


def _backfill(bind: sa.engine.Connection) -> dict[str, tuple[int, str]]:
    """Chain the rows written before this revision in id order; returns each chain's head."""
    heads: dict[str, tuple[int, str]] = {}
    last = 0
    while True:
        rows = bind.execute(
            sa.select(audit_events)
            .where(audit_events.c.id > last)
            .order_by(audit_events.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return heads
        updates: list[dict[str, Any]] = []
        for row in rows:
            chain = row.tenant_id or PLATFORM_CHAIN
            seq, prev_hash = heads.get(chain, (0, GENESIS_HASH))
            record = AuditRecord(
                chain=chain,
                seq=seq + 1,
                at=row.at,
                actor=row.actor,
                action=row.action,
                target=row.target,
                request_id=None,
                client_address=None,
                data=row.data,
            )
            digest = row_hash(prev_hash, canonical(record))
            heads[chain] = (seq + 1, digest)
            updates.append(
                {"row_id": row.id, "c": chain, "s": seq + 1, "p": prev_hash, "h": digest}
            )
        bind.execute(
            audit_events.update()
            .where(audit_events.c.id == sa.bindparam("row_id"))
            .values(
                chain=sa.bindparam("c"),
                seq=sa.bindparam("s"),
                prev_hash=sa.bindparam("p"),
                hash=sa.bindparam("h"),
            ),
            updates,
        )
        last = rows[-1].id


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("audit_events", sa.Column("chain", sa.String(length=32), nullable=True))
    op.add_column("audit_events", sa.Column("seq", sa.BigInteger(), nullable=True))
    op.add_column("audit_events", sa.Column("request_id", sa.String(length=128), nullable=True))
    op.add_column("audit_events", sa.Column("client_address", sa.String(length=64), nullable=True))
    op.add_column("audit_events", sa.Column("prev_hash", sa.String(length=64), nullable=True))
    op.add_column("audit_events", sa.Column("hash", sa.String(length=64), nullable=True))
    heads = _backfill(bind)
    fk_name = _tenant_fk_name(bind)
    with op.batch_alter_table("audit_events", naming_convention=NAMING) as batch:
        for name in ("chain", "seq", "prev_hash", "hash"):
            batch.alter_column(name, nullable=False)
        batch.create_unique_constraint("uq_audit_events_chain_seq", ["chain", "seq"])
        batch.create_index("ix_audit_events_request_id", ["request_id"])
        # No cascade: the trail refuses deletes, so deleting a tenant must first settle its trail.
        batch.drop_constraint(fk_name, type_="foreignkey")
        batch.create_foreign_key(fk_name, "tenants", ["tenant_id"], ["id"])
    chain_heads = op.create_table(
        "audit_chain_heads",
        sa.Column("chain", sa.String(length=32), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    if heads:
        now = datetime.now(UTC)
        op.bulk_insert(
            chain_heads,
            [
                {"chain": c, "seq": s, "hash": h, "updated_at": now}
                for c, (s, h) in sorted(heads.items())
            ],
        )
    if bind.dialect.name == "postgresql":
        op.execute(APPEND_ONLY_FUNCTION)
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    op.drop_table("audit_chain_heads")
    fk_name = _tenant_fk_name(bind)
    with op.batch_alter_table("audit_events", naming_convention=NAMING) as batch:
        batch.drop_constraint(fk_name, type_="foreignkey")
        batch.create_foreign_key(fk_name, "tenants", ["tenant_id"], ["id"], ondelete="CASCADE")
        batch.drop_index("ix_audit_events_request_id")
        batch.drop_constraint("uq_audit_events_chain_seq", type_="unique")
        for name in ("hash", "prev_hash", "client_address", "request_id", "seq", "chain"):
            batch.drop_column(name)
