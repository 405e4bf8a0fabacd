"""Tenant-scoped data access. Every query on tenant-owned rows goes through `TenantScope`,
which adds `tenant_id = <this tenant>` to it; nothing else in the code queries those tables."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from resources import audit
from resources.tables import (
    ApiKey,
    AuditEvent,
    DatasetExample,
    DatasetVersion,
    Deployment,
    Document,
    DocumentSplit,
    Evaluation,
    EvaluationQuestion,
    ExampleReview,
    Invitation,
    Membership,
    Project,
    Run,
    RunEvent,
    Tenant,
    User,
    utcnow,
)

API_KEY_PREFIX = "ptk_"
# Every scope a key can carry (api/security.py explains each).
ALL_KEY_SCOPES = ("read", "write", "train", "deploy", "inference", "admin")


def hash_api_key(plaintext: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough (no dictionary to defend against).
    return hashlib.sha256(plaintext.encode()).hexdigest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def partition_key(tenant_slug: str, project_slug: str) -> str:
    return f"{tenant_slug}__{project_slug}"


def split_partition_key(key: str) -> tuple[str, str]:
    tenant, sep, project = key.partition("__")
    if not sep or not tenant or not project:
        raise ValueError(f"partition key {key!r} is not of the form <tenant>__<project>")
    return tenant, project


def tenant_by_slug(session: Session, slug: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.slug == slug))


def create_tenant(
    session: Session, slug: str, name: str, plan: str = "standard"
) -> tuple[Tenant, str]:
    """Create a tenant and its first API key (every scope, owner role: the key scripts have used
    since before accounts existed); returns the key in plain text (shown once)."""
    tenant = Tenant(slug=slug, name=name, plan=plan)
    session.add(tenant)
    session.flush()
    plaintext, _ = TenantScope(session, tenant.id).create_api_key(
        "default", scopes=ALL_KEY_SCOPES, role="owner", created_by="tenant creation"
    )
    return tenant, plaintext


def authenticate(session: Session, plaintext: str) -> tuple[Tenant, ApiKey] | None:
    """The tenant that owns this key, or None when it is unknown, revoked or expired."""
    if not plaintext.startswith(API_KEY_PREFIX):
        return None
    row = session.execute(
        select(ApiKey, Tenant)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.key_hash == hash_api_key(plaintext), ApiKey.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    key, tenant = row
    now = utcnow()
    if key.expires_at is not None and _aware(key.expires_at) <= now:
        return None
    # One write a minute per key at most: the time is for people, not for accounting.
    if key.last_used_at is None or (now - _aware(key.last_used_at)).total_seconds() > 60:
        key.last_used_at = now
    return tenant, key


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes (stored as UTC); PostgreSQL aware ones."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class TenantScope:
    """Reads and writes of one tenant's rows."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    # api keys
    def create_api_key(
        self,
        name: str,
        scopes: Sequence[str] = ALL_KEY_SCOPES,
        role: str = "owner",
        created_by: str = "",
        created_by_user_id: str | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[str, ApiKey]:
        """A new key; returns its plain text (shown once: only the hash is kept) and the row."""
        plaintext = new_api_key()
        row = ApiKey(
            tenant_id=self.tenant_id,
            name=name,
            prefix=plaintext[:12],
            key_hash=hash_api_key(plaintext),
            scopes=[s for s in ALL_KEY_SCOPES if s in set(scopes)],
            role=role,
            created_by=created_by,
            created_by_user_id=created_by_user_id,
            expires_at=expires_at,
        )
        self.session.add(row)
        self.session.flush()
        return plaintext, row

    def api_keys(self, include_revoked: bool = False) -> Sequence[ApiKey]:
        query = select(ApiKey).where(ApiKey.tenant_id == self.tenant_id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        return self.session.scalars(query.order_by(ApiKey.created_at.desc(), ApiKey.id)).all()

    def api_key(self, key_id: str) -> ApiKey | None:
        return self.session.scalar(
            select(ApiKey).where(ApiKey.tenant_id == self.tenant_id, ApiKey.id == key_id)
        )

    # members and invitations
    def memberships(self) -> Sequence[tuple[Membership, User]]:
        rows = self.session.execute(
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == self.tenant_id)
            .order_by(User.email)
        ).all()
        return [(m, u) for m, u in rows]

    def membership(self, user_id: str) -> Membership | None:
        return self.session.scalar(
            select(Membership).where(
                Membership.tenant_id == self.tenant_id, Membership.user_id == user_id
            )
        )

    def owner_count(self) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(Membership)
                .where(Membership.tenant_id == self.tenant_id, Membership.role == "owner")
            )
            or 0
        )

    def add_membership(self, user_id: str, role: str, created_by: str) -> Membership:
        row = Membership(
            tenant_id=self.tenant_id, user_id=user_id, role=role, created_by=created_by
        )
        self.session.add(row)
        self.session.flush()
        return row

    def invitations(self, pending_only: bool = True) -> Sequence[Invitation]:
        query = select(Invitation).where(Invitation.tenant_id == self.tenant_id)
        if pending_only:
            query = query.where(Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
        return self.session.scalars(query.order_by(Invitation.created_at.desc())).all()

    def invitation(self, invitation_id: str) -> Invitation | None:
        return self.session.scalar(
            select(Invitation).where(
                Invitation.tenant_id == self.tenant_id, Invitation.id == invitation_id
            )
        )

    def lock_tenant(self) -> Tenant:
        """The tenant row, locked until the transaction ends (PostgreSQL): quota checks that
        count and then insert hold it, so two requests cannot both take the last unit."""
        tenant = self.session.scalar(
            select(Tenant).where(Tenant.id == self.tenant_id).with_for_update()
        )
        if tenant is None:
            raise PermissionError(f"tenant {self.tenant_id} does not exist")
        return tenant

    # projects
    def projects(self) -> Sequence[Project]:
        return self.session.scalars(
            select(Project).where(Project.tenant_id == self.tenant_id).order_by(Project.slug)
        ).all()

    def project(self, slug: str) -> Project | None:
        return self.session.scalar(
            select(Project).where(Project.tenant_id == self.tenant_id, Project.slug == slug)
        )

    def create_project(self, slug: str, name: str, settings: dict[str, Any]) -> Project:
        project = Project(tenant_id=self.tenant_id, slug=slug, name=name, settings=settings)
        self.session.add(project)
        self.session.flush()
        return project

    # documents
    def documents(
        self, project_id: str, statuses: Sequence[str] | None = None
    ) -> Sequence[Document]:
        query = select(Document).where(
            Document.tenant_id == self.tenant_id, Document.project_id == project_id
        )
        if statuses:
            query = query.where(Document.status.in_(statuses))
        return self.session.scalars(query.order_by(Document.created_at, Document.id)).all()

    def document(self, document_id: str) -> Document | None:
        return self.session.scalar(
            select(Document).where(Document.tenant_id == self.tenant_id, Document.id == document_id)
        )

    def document_by_sha256(self, project_id: str, sha256: str) -> Document | None:
        return self.session.scalar(
            select(Document).where(
                Document.tenant_id == self.tenant_id,
                Document.project_id == project_id,
                Document.sha256 == sha256,
            )
        )

    def _own_project(self, project_id: str) -> None:
        """Refuse to write rows that point at another tenant's project."""
        owner = self.session.scalar(select(Project.tenant_id).where(Project.id == project_id))
        if owner != self.tenant_id:
            raise PermissionError(f"project {project_id} does not belong to this tenant")

    def stored_bytes(self) -> int:
        """Upload bytes this tenant stores, across its projects (the storage quota counts these)."""
        total = self.session.scalar(
            select(func.coalesce(func.sum(Document.size_bytes), 0)).where(
                Document.tenant_id == self.tenant_id
            )
        )
        return int(total or 0)

    def add_document(self, project_id: str, **fields: Any) -> Document:
        self._own_project(project_id)
        document = Document(tenant_id=self.tenant_id, project_id=project_id, **fields)
        self.session.add(document)
        self.session.flush()
        return document

    # runs
    def add_run(self, project_id: str, kind: str, config: dict[str, Any]) -> Run:
        self._own_project(project_id)
        run = Run(tenant_id=self.tenant_id, project_id=project_id, kind=kind, config=config)
        self.session.add(run)
        self.session.flush()
        return run

    def runs(self, project_id: str, limit: int = 50) -> Sequence[Run]:
        return self.session.scalars(
            select(Run)
            .where(Run.tenant_id == self.tenant_id, Run.project_id == project_id)
            .order_by(Run.created_at.desc())
            .limit(limit)
        ).all()

    def run(self, run_id: str) -> Run | None:
        return self.session.scalar(
            select(Run).where(Run.tenant_id == self.tenant_id, Run.id == run_id)
        )

    def run_by_dagster_id(self, dagster_run_id: str) -> Run | None:
        return self.session.scalar(
            select(Run).where(Run.tenant_id == self.tenant_id, Run.dagster_run_id == dagster_run_id)
        )

    def add_run_event(
        self,
        run_id: str,
        kind: str,
        message: str = "",
        stage: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> RunEvent:
        if self.run(run_id) is None:
            raise PermissionError(f"run {run_id} does not belong to this tenant")
        event = RunEvent(
            tenant_id=self.tenant_id,
            run_id=run_id,
            kind=kind,
            stage=stage,
            message=message,
            data=data or {},
        )
        self.session.add(event)
        self.session.flush()
        return event

    def run_events(self, run_id: str) -> Sequence[RunEvent]:
        return self.session.scalars(
            select(RunEvent)
            .where(RunEvent.tenant_id == self.tenant_id, RunEvent.run_id == run_id)
            .order_by(RunEvent.at, RunEvent.id)
        ).all()

    # deployments
    def deployments(self, project_id: str) -> Sequence[Deployment]:
        return self.session.scalars(
            select(Deployment)
            .where(Deployment.tenant_id == self.tenant_id, Deployment.project_id == project_id)
            .order_by(Deployment.version.desc())
        ).all()

    def deployment(self, project_id: str, version: int) -> Deployment | None:
        return self.session.scalar(
            select(Deployment).where(
                Deployment.tenant_id == self.tenant_id,
                Deployment.project_id == project_id,
                Deployment.version == version,
            )
        )

    def active_deployment(self, project_id: str) -> Deployment | None:
        return self.session.scalar(
            select(Deployment).where(
                Deployment.tenant_id == self.tenant_id,
                Deployment.project_id == project_id,
                Deployment.status == "active",
            )
        )

    def add_deployment(self, project_id: str, **fields: Any) -> Deployment:
        self._own_project(project_id)
        latest = self.deployments(project_id)
        version = (latest[0].version + 1) if latest else 1
        deployment = Deployment(
            tenant_id=self.tenant_id, project_id=project_id, version=version, **fields
        )
        self.session.add(deployment)
        self.session.flush()
        return deployment

    def activate(self, deployment: Deployment) -> None:
        """Make `deployment` the project's only active one."""
        if deployment.tenant_id != self.tenant_id:
            raise PermissionError("deployment belongs to another tenant")
        self.session.execute(
            update(Deployment)
            .where(
                Deployment.tenant_id == self.tenant_id,
                Deployment.project_id == deployment.project_id,
                Deployment.id != deployment.id,
            )
            .values(status="inactive")
        )
        deployment.status = "active"
        deployment.activated_at = utcnow()
        self.session.flush()

    # evaluations
    def add_evaluation(self, project_id: str, **fields: Any) -> Evaluation:
        self._own_project(project_id)
        row = Evaluation(tenant_id=self.tenant_id, project_id=project_id, **fields)
        self.session.add(row)
        self.session.flush()
        return row

    def evaluations(self, project_id: str, limit: int = 50) -> Sequence[Evaluation]:
        return self.session.scalars(
            select(Evaluation)
            .where(Evaluation.tenant_id == self.tenant_id, Evaluation.project_id == project_id)
            .order_by(Evaluation.created_at.desc())
            .limit(limit)
        ).all()

    def evaluation(self, project_id: str, evaluation_id: str) -> Evaluation | None:
        return self.session.scalar(
            select(Evaluation).where(
                Evaluation.tenant_id == self.tenant_id,
                Evaluation.project_id == project_id,
                Evaluation.id == evaluation_id,
            )
        )

    # dataset: document splits (frozen once given)
    def document_splits(self, project_id: str) -> dict[str, str]:
        rows = self.session.execute(
            select(DocumentSplit.document_id, DocumentSplit.split).where(
                DocumentSplit.tenant_id == self.tenant_id, DocumentSplit.project_id == project_id
            )
        ).all()
        return {doc: split for doc, split in rows}

    def freeze_document_splits(self, project_id: str, assignment: dict[str, str]) -> int:
        """Record the splits of documents that have none yet; returns how many were new."""
        self._own_project(project_id)
        known = self.document_splits(project_id)
        new = {d: s for d, s in assignment.items() if d not in known}
        for document_id, split in sorted(new.items()):
            self.session.add(
                DocumentSplit(
                    tenant_id=self.tenant_id,
                    project_id=project_id,
                    document_id=document_id,
                    split=split,
                )
            )
        self.session.flush()
        return len(new)

    # dataset: examples of a generation
    def replace_examples(self, project_id: str, generation: str, rows: list[dict[str, Any]]) -> int:
        """Store a generation's examples (replacing an earlier materialisation of the same one)."""
        self._own_project(project_id)
        self.session.execute(
            delete(DatasetExample).where(
                DatasetExample.tenant_id == self.tenant_id,
                DatasetExample.project_id == project_id,
                DatasetExample.generation == generation,
            )
        )
        self.session.add_all(
            DatasetExample(
                tenant_id=self.tenant_id, project_id=project_id, generation=generation, **row
            )
            for row in rows
        )
        self.session.flush()
        return len(rows)

    def latest_generation(self, project_id: str) -> str | None:
        return self.session.scalar(
            select(DatasetExample.generation)
            .where(
                DatasetExample.tenant_id == self.tenant_id, DatasetExample.project_id == project_id
            )
            .order_by(DatasetExample.created_at.desc())
            .limit(1)
        )

    def _examples_query(
        self,
        project_id: str,
        generation: str,
        split: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        generator: str | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
    ) -> Any:
        query = select(DatasetExample).where(
            DatasetExample.tenant_id == self.tenant_id,
            DatasetExample.project_id == project_id,
            DatasetExample.generation == generation,
        )
        if split:
            query = query.where(DatasetExample.split == split)
        if kind:
            query = query.where(DatasetExample.kind == kind)
        if status:
            query = query.where(DatasetExample.status == status)
        if generator:
            query = query.where(DatasetExample.generator.startswith(generator))
        if min_score is not None:
            query = query.where(DatasetExample.score >= min_score)
        if max_score is not None:
            query = query.where(DatasetExample.score <= max_score)
        return query

    def examples(
        self,
        project_id: str,
        generation: str,
        limit: int | None = None,
        offset: int = 0,
        **filters: Any,
    ) -> Sequence[DatasetExample]:
        query = self._examples_query(project_id, generation, **filters).order_by(
            DatasetExample.split, DatasetExample.score, DatasetExample.key
        )
        if limit is not None:
            query = query.limit(limit).offset(offset)
        return self.session.scalars(query).all()

    def count_examples(self, project_id: str, generation: str, **filters: Any) -> int:
        query = self._examples_query(project_id, generation, **filters)
        return int(self.session.scalar(select(func.count()).select_from(query.subquery())) or 0)

    def example(self, project_id: str, example_id: str) -> DatasetExample | None:
        return self.session.scalar(
            select(DatasetExample).where(
                DatasetExample.tenant_id == self.tenant_id,
                DatasetExample.project_id == project_id,
                DatasetExample.id == example_id,
            )
        )

    # dataset: review decisions
    def review_example(
        self,
        example: DatasetExample,
        decision: str,
        reviewer: str,
        question: str | None = None,
        answer: str | None = None,
        note: str | None = None,
    ) -> ExampleReview:
        """Record a decision and apply it to the example row; later generations apply it too."""
        if example.tenant_id != self.tenant_id:
            raise PermissionError("example belongs to another tenant")
        review = ExampleReview(
            tenant_id=self.tenant_id,
            project_id=example.project_id,
            example_key=example.key,
            decision=decision,
            question=question,
            answer=answer,
            note=note,
            reviewer=reviewer,
        )
        self.session.add(review)
        self.session.flush()
        example.status = decision
        example.reviewed_by = reviewer
        example.reviewed_at = review.at
        return review

    def latest_reviews(self, project_id: str) -> dict[str, ExampleReview]:
        """The last decision per example key."""
        rows = self.session.scalars(
            select(ExampleReview)
            .where(
                ExampleReview.tenant_id == self.tenant_id, ExampleReview.project_id == project_id
            )
            .order_by(ExampleReview.at, ExampleReview.id)
        ).all()
        return {r.example_key: r for r in rows}

    def reviews(self, project_id: str, example_key: str) -> Sequence[ExampleReview]:
        return self.session.scalars(
            select(ExampleReview)
            .where(
                ExampleReview.tenant_id == self.tenant_id,
                ExampleReview.project_id == project_id,
                ExampleReview.example_key == example_key,
            )
            .order_by(ExampleReview.at, ExampleReview.id)
        ).all()

    # dataset: versions
    def save_dataset_version(
        self, project_id: str, version: str, generation: str, **fields: Any
    ) -> DatasetVersion:
        """Create the version, or refresh it when the same version is materialised again."""
        self._own_project(project_id)
        row = self.dataset_version(project_id, version)
        if row is None:
            row = DatasetVersion(
                tenant_id=self.tenant_id,
                project_id=project_id,
                version=version,
                generation=generation,
            )
            self.session.add(row)
        for name, value in fields.items():
            setattr(row, name, value)
        row.created_at = utcnow()
        self.session.flush()
        return row

    def dataset_versions(self, project_id: str) -> Sequence[DatasetVersion]:
        return self.session.scalars(
            select(DatasetVersion)
            .where(
                DatasetVersion.tenant_id == self.tenant_id, DatasetVersion.project_id == project_id
            )
            .order_by(DatasetVersion.created_at.desc())
        ).all()

    def dataset_version(self, project_id: str, version: str) -> DatasetVersion | None:
        return self.session.scalar(
            select(DatasetVersion).where(
                DatasetVersion.tenant_id == self.tenant_id,
                DatasetVersion.project_id == project_id,
                DatasetVersion.version == version,
            )
        )

    # audit
    def evaluation_questions(self, project_id: str) -> Sequence[EvaluationQuestion]:
        return self.session.scalars(
            select(EvaluationQuestion)
            .where(
                EvaluationQuestion.tenant_id == self.tenant_id,
                EvaluationQuestion.project_id == project_id,
            )
            .order_by(EvaluationQuestion.position)
        ).all()

    def replace_evaluation_questions(
        self, project_id: str, questions: Sequence[dict[str, Any]], actor: str
    ) -> list[EvaluationQuestion]:
        """The project's evaluation set becomes `questions` (question, answer, document,
        expect), in order."""
        self._own_project(project_id)
        self.session.execute(
            delete(EvaluationQuestion).where(
                EvaluationQuestion.tenant_id == self.tenant_id,
                EvaluationQuestion.project_id == project_id,
            )
        )
        rows = [
            EvaluationQuestion(
                tenant_id=self.tenant_id,
                project_id=project_id,
                position=i,
                question=q["question"],
                answer=q.get("answer"),
                document=q.get("document"),
                expect=q["expect"],
                created_by=actor,
            )
            for i, q in enumerate(questions)
        ]
        self.session.add_all(rows)
        self.session.flush()
        return rows

    def audit(
        self, actor: str, action: str, target: str = "", data: dict[str, Any] | None = None
    ) -> None:
        """Append to the tenant's audit chain (resources/audit.py)."""
        audit.append(self.session, self.tenant_id, actor, action, target, data)

    def audit_events(self, limit: int = 100) -> Sequence[AuditEvent]:
        return self.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.tenant_id == self.tenant_id)
            .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
            .limit(limit)
        ).all()
