"""accounts: users, memberships, invitations, reset tokens, recovery codes, portal sessions,
sign-in throttling, plans with quotas (free, standard, enterprise seeded), rate windows; API keys
get scopes, a role, a creator and an expiry; tenants a status

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ALL_SCOPES = ["read", "write", "train", "deploy", "inference", "admin"]
GIB = 1024**3
# (id, name, documents, storage bytes, runs a month, concurrent runs, steps a run, chats a minute)
PLANS = [
    ("free", "Free", 200, 1 * GIB, 20, 1, 500, 30),
    ("standard", "Standard", 20_000, 5 * GIB, 300, 2, 10_000, 300),
    ("enterprise", "Enterprise", 1_000_000, 500 * GIB, 10_000, 8, 200_000, 3_000),
]


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    plans = op.create_table(
        "plans",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("max_documents", sa.BigInteger(), nullable=True),
        sa.Column("max_storage_bytes", sa.BigInteger(), nullable=True),
        sa.Column("max_runs_per_month", sa.Integer(), nullable=True),
        sa.Column("max_concurrent_runs", sa.Integer(), nullable=True),
        sa.Column("max_train_steps", sa.Integer(), nullable=True),
        sa.Column("chat_requests_per_minute", sa.Integer(), nullable=True),
        _ts("created_at", False),
        _ts("updated_at", False),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        plans,
        [
            {
                "id": plan_id,
                "name": name,
                "max_documents": documents,
                "max_storage_bytes": storage,
                "max_runs_per_month": runs,
                "max_concurrent_runs": concurrent,
                "max_train_steps": steps,
                "chat_requests_per_minute": chats,
                "created_at": now,
                "updated_at": now,
            }
            for plan_id, name, documents, storage, runs, concurrent, steps, chats in PLANS
        ],
    )
    # Tenants on a plan the seed does not know keep it, as a plan with no limits.
    bind = op.get_bind()
    known = {p[0] for p in PLANS}
    for (plan_id,) in bind.execute(sa.text("SELECT DISTINCT plan FROM tenants")).all():
        if plan_id not in known:
            bind.execute(
                sa.text(
                    "INSERT INTO plans (id, name, created_at, updated_at) "
                    "VALUES (:id, :id, :now, :now)"
                ),
                {"id": plan_id, "now": now},
            )

    op.create_table(
        "users",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("email", sa.String(length=320), nullable=False, unique=True),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=512), nullable=True),
        _ts("password_changed_at"),
        sa.Column("is_operator", sa.Boolean(), nullable=False),
        _ts("disabled_at"),
        sa.Column("session_epoch", sa.Integer(), nullable=False),
        sa.Column("totp_secret", sa.String(length=512), nullable=True),
        _ts("totp_enabled_at"),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        _ts("created_at", False),
        _ts("last_sign_in_at"),
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(length=32),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "user_id",
            sa.String(length=32),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        _ts("created_at", False),
        sa.UniqueConstraint("tenant_id", "user_id", name="uq_memberships_tenant_user"),
    )
    op.create_index("ix_memberships_tenant_id", "memberships", ["tenant_id"])
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.create_table(
        "invitations",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(length=32),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("invited_by", sa.String(length=200), nullable=False),
        _ts("created_at", False),
        _ts("expires_at", False),
        _ts("accepted_at"),
        sa.Column(
            "accepted_user_id",
            sa.String(length=32),
            sa.ForeignKey("users.id", ondelete="SET NULL"),
            nullable=True,
        ),
        _ts("revoked_at"),
    )
    op.create_index("ix_invitations_tenant_id", "invitations", ["tenant_id"])
    op.create_table(
        "user_tokens",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column(
            "user_id",
            sa.String(length=32),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False, unique=True),
        _ts("created_at", False),
        _ts("expires_at", False),
        _ts("used_at"),
    )
    op.create_index("ix_user_tokens_user_id", "user_tokens", ["user_id"])
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column(
            "user_id",
            sa.String(length=32),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        _ts("created_at", False),
        _ts("used_at"),
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])
    op.create_table(
        "web_sessions",
        sa.Column("id_hash", sa.String(length=64), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        _ts("created_at", False),
        _ts("expires_at"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])
    op.create_table(
        "auth_throttle",
        sa.Column("key", sa.String(length=64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        _ts("window_started_at", False),
        _ts("locked_until"),
    )
    op.create_table(
        "rate_windows",
        sa.Column("key", sa.String(length=120), primary_key=True),
        _ts("window_start", False),
        sa.Column("count", sa.Integer(), nullable=False),
    )

    with op.batch_alter_table("tenants") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=20), nullable=False, server_default="active")
        )
        batch.add_column(_ts("suspended_at"))
        batch.add_column(sa.Column("suspended_reason", sa.Text(), nullable=True))
        batch.create_foreign_key(
            "fk_tenants_plan_plans", "plans", ["plan"], ["id"], ondelete="RESTRICT"
        )
    with op.batch_alter_table("tenants") as batch:
        batch.alter_column("status", server_default=None)

    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("role", sa.String(length=20), nullable=True))
        batch.add_column(
            sa.Column("created_by", sa.String(length=200), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("created_by_user_id", sa.String(length=32), nullable=True))
        batch.add_column(_ts("expires_at"))
        batch.create_foreign_key(
            "fk_api_keys_created_by_user_id_users",
            "users",
            ["created_by_user_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index("ix_api_keys_created_by_user_id", ["created_by_user_id"])
    # Keys made before accounts existed were the tenant's only credential: they keep doing
    # everything (owner role, every scope), so scripts keep working.
    api_keys = sa.table("api_keys", sa.column("scopes", sa.JSON()), sa.column("role", sa.String()))
    op.execute(api_keys.update().values(scopes=ALL_SCOPES, role="owner"))
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scopes", existing_type=sa.JSON(), nullable=False)
        batch.alter_column("role", existing_type=sa.String(length=20), nullable=False)
        batch.alter_column("created_by", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_index("ix_api_keys_created_by_user_id")
        batch.drop_constraint("fk_api_keys_created_by_user_id_users", type_="foreignkey")
        batch.drop_column("expires_at")
        batch.drop_column("created_by_user_id")
        batch.drop_column("created_by")
        batch.drop_column("role")
        batch.drop_column("scopes")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_constraint("fk_tenants_plan_plans", type_="foreignkey")
        batch.drop_column("suspended_reason")
        batch.drop_column("suspended_at")
        batch.drop_column("status")
    op.drop_table("rate_windows")
    op.drop_table("auth_throttle")
    op.drop_index("ix_web_sessions_expires_at", table_name="web_sessions")
    op.drop_index("ix_web_sessions_user_id", table_name="web_sessions")
    op.drop_table("web_sessions")
    op.drop_index("ix_recovery_codes_user_id", table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_index("ix_user_tokens_user_id", table_name="user_tokens")
    op.drop_table("user_tokens")
    op.drop_index("ix_invitations_tenant_id", table_name="invitations")
    op.drop_table("invitations")
    op.drop_index("ix_memberships_user_id", table_name="memberships")
    op.drop_index("ix_memberships_tenant_id", table_name="memberships")
    op.drop_table("memberships")
    op.drop_table("users")
    op.drop_table("plans")
