"""dataset builder: document splits, examples with scores and review state, reviews, versions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _owner_columns() -> list[sa.Column]:
    return [
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
    ]


def _owner_keys() -> list[sa.ForeignKeyConstraint]:
    return [
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
    ]


def upgrade() -> None:
    op.create_table(
        "document_splits",
        sa.Column("id", sa.String(length=32), nullable=False),
        *_owner_columns(),
        sa.Column("document_id", sa.String(length=32), nullable=False),
        sa.Column("split", sa.String(length=20), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        *_owner_keys(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "document_id", name="uq_document_splits_project_doc"),
    )
    with op.batch_alter_table("document_splits") as batch:
        batch.create_index(batch.f("ix_document_splits_project_id"), ["project_id"])
        batch.create_index(batch.f("ix_document_splits_tenant_id"), ["tenant_id"])

    op.create_table(
        "dataset_examples",
        sa.Column("id", sa.String(length=32), nullable=False),
        *_owner_columns(),
        sa.Column("generation", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("document_id", sa.String(length=32), nullable=True),
        sa.Column("split", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("generator", sa.String(length=200), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("messages", sa.JSON(), nullable=False),
        sa.Column("citations", sa.JSON(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("review_reason", sa.String(length=20), nullable=True),
        sa.Column("duplicate_of", sa.String(length=40), nullable=True),
        sa.Column("reviewed_by", sa.String(length=200), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("original", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        *_owner_keys(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "project_id", "generation", "key", name="uq_dataset_examples_generation_key"
        ),
    )
    with op.batch_alter_table("dataset_examples") as batch:
        batch.create_index(batch.f("ix_dataset_examples_project_id"), ["project_id"])
        batch.create_index(batch.f("ix_dataset_examples_tenant_id"), ["tenant_id"])
        batch.create_index(batch.f("ix_dataset_examples_key"), ["key"])
        batch.create_index(
            "ix_dataset_examples_generation_status", ["project_id", "generation", "status"]
        )

    op.create_table(
        "example_reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        *_owner_columns(),
        sa.Column("example_key", sa.String(length=40), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("question", sa.Text(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        *_owner_keys(),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("example_reviews") as batch:
        batch.create_index(batch.f("ix_example_reviews_tenant_id"), ["tenant_id"])
        batch.create_index("ix_example_reviews_project_key", ["project_id", "example_key"])

    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.String(length=32), nullable=False),
        *_owner_columns(),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("generation", sa.String(length=32), nullable=False),
        sa.Column("manifest_key", sa.String(length=1024), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("dagster_run_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        *_owner_keys(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "version", name="uq_dataset_versions_project_version"),
    )
    with op.batch_alter_table("dataset_versions") as batch:
        batch.create_index(batch.f("ix_dataset_versions_project_id"), ["project_id"])
        batch.create_index(batch.f("ix_dataset_versions_tenant_id"), ["tenant_id"])


def downgrade() -> None:
    for table in ("dataset_versions", "example_reviews", "dataset_examples", "document_splits"):
        op.drop_table(table)
