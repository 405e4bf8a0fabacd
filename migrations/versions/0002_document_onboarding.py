"""documents: scan, language, quality, PII and near-duplicate columns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("similarity", sa.Float(), nullable=True))
        batch.add_column(sa.Column("scan_status", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("scan_detail", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("language", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("quality_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("redaction_status", sa.String(length=20), nullable=True))
        batch.add_column(
            sa.Column("pii_summary", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch.create_index("ix_documents_project_status", ["project_id", "status"])


def downgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_index("ix_documents_project_status")
        for column in (
            "pii_summary",
            "redaction_status",
            "quality_score",
            "language",
            "scan_detail",
            "scan_status",
            "similarity",
        ):
            batch.drop_column(column)
