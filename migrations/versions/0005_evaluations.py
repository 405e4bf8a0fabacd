"""evaluations: every evaluation of a candidate adapter or an active deployment, with its gate

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column(
            "tenant_id",
            sa.String(length=32),
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "project_id",
            sa.String(length=32),
            sa.ForeignKey("projects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        # candidate: a new adapter before promotion; scheduled: an active deployment re-evaluated
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("adapter_version", sa.String(length=64), nullable=False),
        sa.Column("deployment_version", sa.Integer(), nullable=True),
        sa.Column("compared_with", sa.String(length=100), nullable=True),
        sa.Column("dataset_version", sa.String(length=64), nullable=False),
        sa.Column("questions", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("report_key", sa.String(length=1024), nullable=False),
        sa.Column("dagster_run_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_evaluations_tenant_id", "evaluations", ["tenant_id"])
    op.create_index("ix_evaluations_project_created", "evaluations", ["project_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_evaluations_project_created", table_name="evaluations")
    op.drop_index("ix_evaluations_tenant_id", table_name="evaluations")
    op.drop_table("evaluations")
