"""The application database's tables (SQLAlchemy 2). Alembic migrations in `migrations/` create them.

Every row that belongs to a tenant carries `tenant_id`; `resources.repository.TenantScope`
is the only way the application reads them, and it always filters by it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy import UniqueConstraint as Unique
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # the commercial plan; approved base models may be limited to some plans
    plan: Mapped[str] = mapped_column(String(40), default="standard")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (Unique("tenant_id", "slug", name="uq_projects_tenant_slug"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # the tenant's confirmation that it holds the rights to train on the project's documents
    rights_confirmed_by: Mapped[str | None] = mapped_column(String(200))
    rights_confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rights_statement: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        Unique("project_id", "sha256", name="uq_documents_project_sha256"),
        Index("ix_documents_project_status", "project_id", "status"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    declared_type: Mapped[str | None] = mapped_column(String(100))
    detected_type: Mapped[str | None] = mapped_column(String(20))
    object_key: Mapped[str] = mapped_column(String(1024))
    # uploaded -> pending_scan -> quarantined | ready | failed | duplicate | excluded
    status: Mapped[str] = mapped_column(String(20), default="uploaded")
    failure_reason: Mapped[str | None] = mapped_column(Text)
    page_count: Mapped[int | None] = mapped_column(Integer)
    word_count: Mapped[int | None] = mapped_column(Integer)
    extraction_method: Mapped[str | None] = mapped_column(String(20))
    text_hash: Mapped[str | None] = mapped_column(String(64))
    duplicate_of: Mapped[str | None] = mapped_column(String(32))
    similarity: Mapped[float | None] = mapped_column(Float)
    # clean | infected | skipped (no scanner and scanning not required) | None (not scanned yet)
    scan_status: Mapped[str | None] = mapped_column(String(20))
    scan_detail: Mapped[str | None] = mapped_column(String(300))
    language: Mapped[str | None] = mapped_column(String(12))
    quality_score: Mapped[float | None] = mapped_column(Float)
    # clean | redacted | blocked | allowed
    redaction_status: Mapped[str | None] = mapped_column(String(20))
    pii_summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40), default="pipeline")
    dagster_run_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # queued -> running -> succeeded | failed | cancelled
    status: Mapped[str] = mapped_column(String(20), default="queued")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class RunEvent(Base):
    __tablename__ = "run_events"
    __table_args__ = (Index("ix_run_events_run_at", "run_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    stage: Mapped[str | None] = mapped_column(String(60))
    message: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (Unique("project_id", "version", name="uq_deployments_project_version"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    # active | inactive
    status: Mapped[str] = mapped_column(String(20), default="inactive")
    base_model: Mapped[str] = mapped_column(String(300))
    adapter_key: Mapped[str] = mapped_column(String(1024))
    dataset_version: Mapped[str] = mapped_column(String(64))
    manifest_key: Mapped[str] = mapped_column(String(1024))
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dagster_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Evaluation(Base):
    """One evaluation on the gold split: a candidate adapter before promotion (`candidate`) or an
    active deployment re-evaluated on schedule (`scheduled`); `passed` and `reasons` are the
    promotion gate's verdict, or for a scheduled one whether it regressed."""

    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_project_created", "project_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    adapter_version: Mapped[str] = mapped_column(String(64))
    deployment_version: Mapped[int | None] = mapped_column(Integer)
    compared_with: Mapped[str | None] = mapped_column(String(100))
    dataset_version: Mapped[str] = mapped_column(String(64))
    questions: Mapped[int] = mapped_column(Integer)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    passed: Mapped[bool] = mapped_column(Boolean)
    reasons: Mapped[list[Any]] = mapped_column(default=list)
    report_key: Mapped[str] = mapped_column(String(1024))
    dagster_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvaluationQuestion(Base):
    """A question of the project's own evaluation set: written by the tenant, never trained on.
    `expect` is `answer` (with the expected `answer`, and optionally the document that holds it)
    or `refuse` (the documents do not cover it)."""

    __tablename__ = "evaluation_questions"
    __table_args__ = (Index("ix_evaluation_questions_project", "project_id", "position"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    document: Mapped[str | None] = mapped_column(String(512))
    expect: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(String(300), default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class DocumentSplit(Base):
    """The split a document was first given; kept across dataset versions (the gold set is frozen)."""

    __tablename__ = "document_splits"
    __table_args__ = (Unique("project_id", "document_id", name="uq_document_splits_project_doc"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    document_id: Mapped[str] = mapped_column(String(32))
    # train | validation | gold
    split: Mapped[str] = mapped_column(String(20))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatasetExample(Base):
    """One instruction example of a generation (one materialisation of `examples`), with its
    scores and review state."""

    __tablename__ = "dataset_examples"
    __table_args__ = (
        Unique("project_id", "generation", "key", name="uq_dataset_examples_generation_key"),
        Index("ix_dataset_examples_generation_status", "project_id", "generation", "status"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    generation: Mapped[str] = mapped_column(String(32))
    # Content id (chunk + question): stable across generations, so review decisions carry over.
    key: Mapped[str] = mapped_column(String(40), index=True)
    document_id: Mapped[str | None] = mapped_column(String(32))
    split: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    generator: Mapped[str] = mapped_column(String(200))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    messages: Mapped[list[Any]] = mapped_column(default=list)
    citations: Mapped[list[Any]] = mapped_column(default=list)
    context: Mapped[list[Any]] = mapped_column(default=list)
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    # pending | auto_accepted | approved | rejected | edited | merged
    status: Mapped[str] = mapped_column(String(20))
    review_reason: Mapped[str | None] = mapped_column(String(20))
    duplicate_of: Mapped[str | None] = mapped_column(String(40))
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The generated question and answer, kept when a reviewer edits them.
    original: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ExampleReview(Base):
    """A reviewer's decision on an example (by content key: it applies to later generations too)."""

    __tablename__ = "example_reviews"
    __table_args__ = (Index("ix_example_reviews_project_key", "project_id", "example_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    example_key: Mapped[str] = mapped_column(String(40))
    # approved | rejected | edited
    decision: Mapped[str] = mapped_column(String(20))
    question: Mapped[str | None] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatasetVersion(Base):
    """One materialisation of `splits`: the files the trainer reads and their manifest."""

    __tablename__ = "dataset_versions"
    __table_args__ = (Unique("project_id", "version", name="uq_dataset_versions_project_version"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[str] = mapped_column(String(32))
    generation: Mapped[str] = mapped_column(String(32))
    manifest_key: Mapped[str] = mapped_column(String(1024))
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dagster_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApprovedModel(Base):
    """A base model the platform may fine-tune and serve: where its weights come from, its
    licence, who may use it and its size. Not tenant data: managed by the operator."""

    __tablename__ = "approved_models"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # package (a file inside an installed Python package) | local (a folder) |
    # object_store (a key prefix) | hub (a hub id; only where PRIVATUNE_ALLOW_HUB_MODELS is on)
    source_kind: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(1024))
    licence: Mapped[str] = mapped_column(String(200))
    allowed_tenants: Mapped[list[Any]] = mapped_column(default=list)  # slugs; empty: all
    allowed_plans: Mapped[list[Any]] = mapped_column(default=list)  # plans; empty: all
    context_length: Mapped[int] = mapped_column(Integer)
    chat_template: Mapped[str] = mapped_column(Text, default="bundled")
    parameters: Mapped[int | None] = mapped_column(BigInteger)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
