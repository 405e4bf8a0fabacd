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
    LargeBinary,
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
    # the commercial plan (`plans`): quotas, and approved base models may be limited to some plans
    plan: Mapped[str] = mapped_column(
        String(40), ForeignKey("plans.id", ondelete="RESTRICT"), default="standard"
    )
    # active | suspended (a suspended tenant's keys and members are refused until resumed)
    status: Mapped[str] = mapped_column(String(20), default="active")
    suspended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    suspended_reason: Mapped[str | None] = mapped_column(Text)
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
    # read | write | train | deploy | inference | admin (api/security.py)
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    # The role the key acts with: the creator's role when it was made (capped by the creator's
    # role today when a user made it), `owner` for the key tenant creation returned.
    role: Mapped[str] = mapped_column(String(20), default="member")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_by_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
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
    """One event of a tenant's (or the platform's) audit trail: append-only, hash-chained per
    `chain` (resources/audit.py writes and checks it; on PostgreSQL a trigger refuses UPDATE,
    DELETE and TRUNCATE)."""

    __tablename__ = "audit_events"
    __table_args__ = (Unique("chain", "seq", name="uq_audit_events_chain_seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # No ON DELETE CASCADE: the trail refuses deletes, so a cascade would only make deleting a
    # tenant fail half-way; deleting one must first decide what becomes of its trail.
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    # the tenant id, or `platform` for the operator plane and accounts with no tenant
    chain: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(String(300), default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    request_id: Mapped[str | None] = mapped_column(String(128), index=True)
    client_address: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The last seq and hash of each audit chain: appends lock it, verification compares it with
    the chain's last row (a deleted tail shows)."""

    __tablename__ = "audit_chain_heads"
    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


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


# --- people, plans and sign-in ----------------------------------------------------------------


class Plan(Base):
    """A commercial plan: the limits every tenant on it has. None: no limit. Operators edit them;
    `free`, `standard` and `enterprise` are seeded by the migration."""

    __tablename__ = "plans"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    max_documents: Mapped[int | None] = mapped_column(BigInteger)
    max_storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_runs_per_month: Mapped[int | None] = mapped_column(Integer)
    max_concurrent_runs: Mapped[int | None] = mapped_column(Integer)
    max_train_steps: Mapped[int | None] = mapped_column(Integer)
    chat_requests_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class User(Base):
    """A person who signs in to the portal. One user may belong to several tenants."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # normalised: NFKC, trimmed, lower-cased (resources/emails.py)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    # argon2id; a legacy PBKDF2-SHA256 or bcrypt hash (imported) is replaced at the next sign-in
    password_hash: Mapped[str | None] = mapped_column(String(512))
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Sessions carry the epoch they were made in; raising it ends every session of the user.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    # TOTP: the secret encrypted at rest (resources/secret_box.py); pending until confirmed.
    totp_secret: Mapped[str | None] = mapped_column(String(512))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Membership(Base):
    """A user's role in a tenant: owner | admin | member | viewer."""

    __tablename__ = "memberships"
    __table_args__ = (Unique("tenant_id", "user_id", name="uq_memberships_tenant_user"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Invitation(Base):
    """An invitation to join a tenant with a role: single use, expiring, the token stored hashed."""

    __tablename__ = "invitations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserToken(Base):
    """A single-use, expiring token sent to a user (password reset), stored hashed."""

    __tablename__ = "user_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(40))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RecoveryCode(Base):
    """A second-factor recovery code (keyed hash), usable once."""

    __tablename__ = "recovery_codes"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebSession(Base):
    """A portal session (server side). The cookie holds the session id; the table keeps only its
    SHA-256, so a database reader cannot take over a session."""

    __tablename__ = "web_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    user_id: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)


class AuthThrottle(Base):
    """Failed sign-ins per account and per client address (keys are keyed hashes, so the table
    does not list who tried)."""

    __tablename__ = "auth_throttle"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RateWindow(Base):
    """Requests counted in a fixed window (chat requests per minute, per tenant)."""

    __tablename__ = "rate_windows"
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    count: Mapped[int] = mapped_column(Integer, default=0)
