"""evaluation_questions: a project's own evaluation set, kept apart from training

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluation_questions",
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
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("document", sa.String(length=512), nullable=True),
        # answer: the documents answer it (with `answer`); refuse: they do not cover it
        sa.Column("expect", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_evaluation_questions_tenant_id", "evaluation_questions", ["tenant_id"])
    op.create_index(
        "ix_evaluation_questions_project", "evaluation_questions", ["project_id", "position"]
    )


def downgrade() -> None:
    op.drop_index("ix_evaluation_questions_project", table_name="evaluation_questions")
    op.drop_index("ix_evaluation_questions_tenant_id", table_name="evaluation_questions")
    op.drop_table("evaluation_questions")
