"""training runs: approved base models, tenant plans, data-rights confirmations

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approved_models",
        sa.Column("id", sa.String(length=100), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source_kind", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("licence", sa.String(length=200), nullable=False),
        sa.Column("allowed_tenants", sa.JSON(), nullable=False),
        sa.Column("allowed_plans", sa.JSON(), nullable=False),
        sa.Column("context_length", sa.Integer(), nullable=False),
        sa.Column("chat_template", sa.Text(), nullable=False),
        sa.Column("parameters", sa.BigInteger(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(
            sa.Column("plan", sa.String(length=40), nullable=False, server_default="standard")
        )
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("rights_confirmed_by", sa.String(length=200), nullable=True))
        batch.add_column(
            sa.Column("rights_confirmed_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("rights_statement", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("rights_statement")
        batch.drop_column("rights_confirmed_at")
        batch.drop_column("rights_confirmed_by")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("plan")
    op.drop_table("approved_models")
