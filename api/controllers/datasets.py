"""Datasets: versions and their manifests, examples by split with filters, files, and the
review queue (approve, reject, edit; each decision recorded with reviewer and time, audited)."""

from __future__ import annotations

from litestar import Controller, Response, get, post

from api import schemas, views
from api.auth import Principal
from api.controllers.projects import get_project
from api.errors import BadRequest, Conflict, NotFound
from resources.database import Database
from resources.object_store import ObjectNotFound, ObjectStore, ProjectStore
from resources.repository import TenantScope
from resources.tables import DatasetExample, Project

SPLITS = ("train", "validation", "gold")
FORMATS = {"jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
MAX_PAGE = 500


def _page(limit: int, offset: int) -> tuple[int, int]:
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise BadRequest(
            f"limit must be between 1 and {MAX_PAGE} and offset at least 0", code="invalid_page"
        )
    return limit, offset


def _version(scope: TenantScope, project: Project, version: str):
    row = scope.dataset_version(project.id, version)
    if row is None:
        raise NotFound(
            f"project {project.slug} has no dataset version {version!r}",
            code="dataset_version_not_found",
        )
    return row


def _example(scope: TenantScope, project: Project, example_id: str) -> DatasetExample:
    row = scope.example(project.id, example_id)
    if row is None:
        raise NotFound(
            f"project {project.slug} has no example {example_id!r}", code="example_not_found"
        )
    return row


class DatasetController(Controller):
    path = "/v1/projects/{project:str}/datasets"
    tags = ["datasets"]

    @get("/", operation_id="listDatasetVersions", sync_to_thread=True)
    def versions(
        self, project: str, principal: Principal, db: Database
    ) -> list[schemas.DatasetVersion]:
        """Dataset versions, newest first, with their counts per split and kind."""
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            return [views.dataset_version(v) for v in scope.dataset_versions(row.id)]

    @get("/{version:str}", operation_id="getDatasetVersion", sync_to_thread=True)
    def detail(
        self, project: str, version: str, principal: Principal, db: Database
    ) -> schemas.DatasetVersionDetail:
        """The version's manifest: counts per split and kind, source documents, generator
        settings, review state, file keys and hashes."""
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = _version(scope, get_project(scope, project), version)
            return schemas.DatasetVersionDetail(
                version=row.version,
                generation=row.generation,
                created_at=row.created_at,
                manifest=row.manifest or {},
            )

    @get("/{version:str}/examples", operation_id="listDatasetExamples", sync_to_thread=True)
    def examples(
        self,
        project: str,
        version: str,
        principal: Principal,
        db: Database,
        split: str | None = None,
        kind: str | None = None,
        status: str | None = None,
        generator: str | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> schemas.ExamplePage:
        """The examples of the version's generation (current review state), filtered by split,
        kind, status, generator (prefix) and score."""
        if split is not None and split not in SPLITS:
            raise BadRequest(f"split must be one of {', '.join(SPLITS)}", code="invalid_split")
        limit, offset = _page(limit, offset)
        filters = {
            "split": split,
            "kind": kind,
            "status": status,
            "generator": generator,
            "min_score": min_score,
            "max_score": max_score,
        }
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            generation = _version(scope, row, version).generation
            items = scope.examples(row.id, generation, limit=limit, offset=offset, **filters)
            return schemas.ExamplePage(
                items=[views.example(e) for e in items],
                total=scope.count_examples(row.id, generation, **filters),
                limit=limit,
                offset=offset,
            )

    @get(
        "/{version:str}/files/{filename:str}",
        operation_id="downloadDatasetSplit",
        sync_to_thread=True,
    )
    def file(
        self,
        project: str,
        version: str,
        filename: str,
        principal: Principal,
        db: Database,
        store: ObjectStore,
    ) -> Response:
        """One split as JSONL (chat format) or Parquet (`train.jsonl`, `gold.parquet`, ...); both
        load with `datasets.load_dataset`."""
        split, _, fmt = filename.partition(".")
        if split not in SPLITS or fmt not in FORMATS:
            raise NotFound(
                f"no file {filename!r}: use train|validation|gold and jsonl|parquet",
                code="dataset_file_not_found",
            )
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            manifest = _version(scope, row, version).manifest or {}
        entry = manifest.get("splits", {}).get(split, {})
        key = entry.get("key" if fmt == "jsonl" else "parquet_key")
        try:
            data = ProjectStore(store, principal.tenant_slug, row.slug).get_bytes(key)
        except (ObjectNotFound, TypeError) as exc:
            raise NotFound(
                f"dataset file {split}.{fmt} is missing from the object store",
                code="dataset_file_not_found",
            ) from exc
        return Response(
            data,
            media_type=FORMATS[fmt],
            headers={"content-disposition": f'attachment; filename="{version}-{split}.{fmt}"'},
        )


class ReviewController(Controller):
    path = "/v1/projects/{project:str}/review"
    tags = ["datasets"]

    @get("/", operation_id="listReviewQueue", sync_to_thread=True)
    def queue(
        self,
        project: str,
        principal: Principal,
        db: Database,
        status: str = "pending",
        split: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> schemas.ExamplePage:
        """The latest generation's examples waiting for review (low scores and a random sample),
        lowest score first; `status` shows decided ones instead."""
        limit, offset = _page(limit, offset)
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            generation = scope.latest_generation(row.id)
            if generation is None:
                return schemas.ExamplePage(items=[], total=0, limit=limit, offset=offset)
            filters = {"status": status, "split": split, "kind": kind}
            items = scope.examples(row.id, generation, limit=limit, offset=offset, **filters)
            return schemas.ExamplePage(
                items=[views.example(e) for e in items],
                total=scope.count_examples(row.id, generation, **filters),
                limit=limit,
                offset=offset,
            )

    def _decide(
        self,
        db: Database,
        principal: Principal,
        project: str,
        example_id: str,
        decision: str,
        note: str | None,
        reviewer: str | None,
        question: str | None = None,
        answer: str | None = None,
    ) -> schemas.Example:
        with db.session() as session:
            scope = TenantScope(session, principal.tenant_id)
            row = get_project(scope, project)
            example = _example(scope, row, example_id)
            if example.status == "merged":
                raise Conflict(
                    f"example {example_id} was merged into {example.duplicate_of}; review that one",
                    code="example_merged",
                )
            who = f"{reviewer} ({principal.actor})" if reviewer else principal.actor
            if decision == "edited":
                if not example.original:
                    example.original = {"question": example.question, "answer": example.answer}
                new_question = (question or example.question).strip()
                new_answer = (answer or example.answer).strip()
                messages = [dict(m) for m in example.messages]
                for m in messages:
                    if m["role"] == "user":
                        m["content"] = m["content"].replace(
                            f"Question: {example.question}", f"Question: {new_question}"
                        )
                    elif m["role"] == "assistant":
                        m["content"] = new_answer
                example.question, example.answer, example.messages = (
                    new_question,
                    new_answer,
                    messages,
                )
                question, answer = new_question, new_answer
            scope.review_example(example, decision, who, question, answer, note)
            scope.audit(
                principal.actor,
                f"example.{decision}",
                f"{row.slug}/{example.key}",
                {"example_id": example.id, "reviewer": who, "note": note},
            )
            return views.example(example)

    @post("/{example_id:str}/approve", operation_id="approveExample", sync_to_thread=True)
    def approve(
        self,
        project: str,
        example_id: str,
        principal: Principal,
        db: Database,
        data: schemas.ReviewNote | None = None,
    ) -> schemas.Example:
        """Approve: training uses the example whatever its score."""
        data = data or schemas.ReviewNote()
        return self._decide(
            db, principal, project, example_id, "approved", data.note, data.reviewer
        )

    @post("/{example_id:str}/reject", operation_id="rejectExample", sync_to_thread=True)
    def reject(
        self,
        project: str,
        example_id: str,
        principal: Principal,
        db: Database,
        data: schemas.ReviewNote | None = None,
    ) -> schemas.Example:
        """Reject: training never uses the example (nor the same example in later generations)."""
        data = data or schemas.ReviewNote()
        return self._decide(
            db, principal, project, example_id, "rejected", data.note, data.reviewer
        )

    @post("/{example_id:str}/edit", operation_id="editExample", sync_to_thread=True)
    def edit(
        self,
        project: str,
        example_id: str,
        data: schemas.ReviewEdit,
        principal: Principal,
        db: Database,
    ) -> schemas.Example:
        """Edit the question and/or answer (the original is kept); the edited example is approved."""
        if not (data.question and data.question.strip()) and not (
            data.answer and data.answer.strip()
        ):
            raise BadRequest("give a new question, a new answer or both", code="empty_edit")
        return self._decide(
            db,
            principal,
            project,
            example_id,
            "edited",
            data.note,
            data.reviewer,
            data.question,
            data.answer,
        )
