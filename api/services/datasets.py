"""Datasets: versions and their manifests, examples by split with filters, split files, and the
review queue (approve, reject, edit; each decision recorded with reviewer and time, audited, and
applied to what the next `splits` gives training)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from api import schemas, views
from api.errors import BadRequest, Conflict, NotFound
from api.security import Principal
from api.services.base import TenantService, get_project
from assets.dataset.review import STATUSES, select_for_training
from resources.database import Database
from resources.object_store import ObjectNotFound, ObjectStore, ProjectStore
from resources.project_settings import ProjectSettings
from resources.repository import TenantScope
from resources.tables import DatasetExample, DatasetVersion, Project

SPLITS = ("train", "validation", "gold")
FORMATS = {"jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
MAX_PAGE = 500


def page(limit: int, offset: int) -> tuple[int, int]:
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise BadRequest(
            f"limit must be between 1 and {MAX_PAGE} and offset at least 0", code="invalid_page"
        )
    return limit, offset


@dataclass(frozen=True)
class SplitFile:
    data: bytes
    media_type: str
    filename: str


@dataclass(frozen=True)
class ExampleBrowser:
    """A page of one generation's examples (a version's, or the latest one's), with what the
    filters can choose from: the kinds present and the count of each status."""

    versions: list[schemas.DatasetVersion]
    # the version shown; None: the latest examples, which no version holds yet
    version: str | None
    generation: str | None
    page: schemas.ExamplePage
    kinds: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class NextTrainingSet:
    """What the next `splits` would give training from the latest examples, as they are reviewed
    now, under the project's review policy; `current` is what the latest version holds."""

    policy: str
    threshold: float
    generation: str | None
    by_split: dict[str, int]
    current: dict[str, int]
    current_version: str | None
    pending: int
    # `wait` and a non-empty review queue: the next run stops at `splits`
    blocked: bool

    @property
    def total(self) -> int:
        return sum(self.by_split.values())


class DatasetService(TenantService):
    def __init__(self, db: Database, principal: Principal, store: ObjectStore) -> None:
        super().__init__(db, principal)
        self.store = store

    @staticmethod
    def _version(scope: TenantScope, project: Project, version: str) -> DatasetVersion:
        row = scope.dataset_version(project.id, version)
        if row is None:
            raise NotFound(
                f"project {project.slug} has no dataset version {version!r}",
                code="dataset_version_not_found",
            )
        return row

    @staticmethod
    def _example(scope: TenantScope, project: Project, example_id: str) -> DatasetExample:
        row = scope.example(project.id, example_id)
        if row is None:
            raise NotFound(
                f"project {project.slug} has no example {example_id!r}", code="example_not_found"
            )
        return row

    def versions(self, project: str) -> list[schemas.DatasetVersion]:
        with self.scope() as scope:
            row = get_project(scope, project)
            return [views.dataset_version(v) for v in scope.dataset_versions(row.id)]

    def detail(self, project: str, version: str) -> schemas.DatasetVersionDetail:
        with self.scope() as scope:
            row = self._version(scope, get_project(scope, project), version)
            return schemas.DatasetVersionDetail(
                version=row.version,
                generation=row.generation,
                created_at=row.created_at,
                manifest=row.manifest or {},
            )

    def examples(
        self, project: str, version: str, limit: int, offset: int, **filters: object
    ) -> schemas.ExamplePage:
        split = filters.get("split")
        if split is not None and split not in SPLITS:
            raise BadRequest(f"split must be one of {', '.join(SPLITS)}", code="invalid_split")
        limit, offset = page(limit, offset)
        with self.scope() as scope:
            row = get_project(scope, project)
            generation = self._version(scope, row, version).generation
            return _example_page(scope, row.id, generation, limit, offset, filters)

    def browse(
        self,
        project: str,
        version: str | None,
        limit: int,
        offset: int,
        **filters: Any,
    ) -> ExampleBrowser:
        """The examples of `version` (default: the latest generation, the one reviews act on),
        filtered like `examples`, with the versions and the filters' choices."""
        split, status = filters.get("split"), filters.get("status")
        if split is not None and split not in SPLITS:
            raise BadRequest(f"split must be one of {', '.join(SPLITS)}", code="invalid_split")
        if status is not None and status not in STATUSES:
            raise BadRequest(f"status must be one of {', '.join(STATUSES)}", code="invalid_status")
        limit, offset = page(limit, offset)
        with self.scope() as scope:
            row = get_project(scope, project)
            versions = list(scope.dataset_versions(row.id))
            if version is not None:
                generation: str | None = self._version(scope, row, version).generation
            else:
                generation = scope.latest_generation(row.id)
                version = next((v.version for v in versions if v.generation == generation), None)
            empty = schemas.ExamplePage(items=[], total=0, limit=limit, offset=offset)
            if generation is None:
                return ExampleBrowser(
                    [views.dataset_version(v) for v in versions], None, None, empty
                )
            facets = scope.session.execute(
                select(DatasetExample.kind, DatasetExample.status, func.count(DatasetExample.id))
                .where(
                    DatasetExample.tenant_id == self.tenant_id,
                    DatasetExample.project_id == row.id,
                    DatasetExample.generation == generation,
                )
                .group_by(DatasetExample.kind, DatasetExample.status)
            ).tuples()
            kinds: set[str] = set()
            statuses = dict.fromkeys(STATUSES, 0)
            for kind, state, n in facets:
                kinds.add(kind)
                statuses[state] = statuses.get(state, 0) + int(n)
            items = scope.examples(row.id, generation, limit=limit, offset=offset, **filters)
            return ExampleBrowser(
                versions=[views.dataset_version(v) for v in versions],
                version=version,
                generation=generation,
                page=schemas.ExamplePage(
                    items=[views.example(e) for e in items],
                    total=scope.count_examples(row.id, generation, **filters),
                    limit=limit,
                    offset=offset,
                ),
                kinds=sorted(kinds),
                statuses=statuses,
            )

    def example(self, project: str, example_id: str) -> schemas.Example:
        with self.scope() as scope:
            return views.example(self._example(scope, get_project(scope, project), example_id))

    def next_training_set(self, project: str) -> NextTrainingSet:
        """Per split, how many of the latest examples the next `splits` would give training
        (assets/dataset/review.py decides, as in the pipeline), beside the latest version's."""
        with self.scope() as scope:
            row = get_project(scope, project)
            settings = ProjectSettings.load(row.settings)
            policy, threshold = settings.review_policy, settings.auto_accept_threshold
            latest = next(iter(scope.dataset_versions(row.id)), None)
            generation = scope.latest_generation(row.id)
            rows: list[Any] = []
            if generation is not None:
                rows = list(
                    scope.session.execute(
                        select(
                            DatasetExample.split,
                            DatasetExample.status,
                            DatasetExample.review_reason,
                            DatasetExample.scores,
                        ).where(
                            DatasetExample.tenant_id == self.tenant_id,
                            DatasetExample.project_id == row.id,
                            DatasetExample.generation == generation,
                        )
                    ).mappings()
                )
        selection = select_for_training(rows, str(policy), float(threshold))
        counts = (latest.manifest or {}).get("counts", {}) if latest else {}
        return NextTrainingSet(
            policy=str(policy),
            threshold=float(threshold),
            generation=generation,
            by_split={s: selection.by_split().get(s, 0) for s in SPLITS},
            current={s: int(counts.get(s, {}).get("examples", 0)) for s in SPLITS},
            current_version=latest.version if latest else None,
            pending=selection.pending,
            blocked=selection.blocked,
        )

    def split_file(self, project: str, version: str, filename: str) -> SplitFile:
        split, _, fmt = filename.partition(".")
        if split not in SPLITS or fmt not in FORMATS:
            raise NotFound(
                f"no file {filename!r}: use train|validation|gold and jsonl|parquet",
                code="dataset_file_not_found",
            )
        with self.scope() as scope:
            row = get_project(scope, project)
            manifest = self._version(scope, row, version).manifest or {}
        entry = manifest.get("splits", {}).get(split, {})
        key = entry.get("key" if fmt == "jsonl" else "parquet_key")
        try:
            data = ProjectStore(self.store, self.tenant_slug, row.slug).get_bytes(key)
        except (ObjectNotFound, TypeError) as exc:
            raise NotFound(
                f"dataset file {split}.{fmt} is missing from the object store",
                code="dataset_file_not_found",
            ) from exc
        return SplitFile(data, FORMATS[fmt], f"{version}-{split}.{fmt}")


class ReviewService(TenantService):
    def queue(
        self,
        project: str,
        status: str,
        split: str | None,
        kind: str | None,
        limit: int,
        offset: int,
    ) -> schemas.ExamplePage:
        limit, offset = page(limit, offset)
        with self.scope() as scope:
            row = get_project(scope, project)
            generation = scope.latest_generation(row.id)
            if generation is None:
                return schemas.ExamplePage(items=[], total=0, limit=limit, offset=offset)
            filters = {"status": status, "split": split, "kind": kind}
            return _example_page(scope, row.id, generation, limit, offset, filters)

    def decide(
        self,
        project: str,
        example_id: str,
        decision: str,
        note: str | None,
        reviewer: str | None,
        question: str | None = None,
        answer: str | None = None,
    ) -> schemas.Example:
        """approved | rejected | edited (an edit keeps the original and approves the example)."""
        if (
            decision == "edited"
            and not (question and question.strip())
            and not (answer and answer.strip())
        ):
            raise BadRequest("give a new question, a new answer or both", code="empty_edit")
        with self.scope() as scope:
            row = get_project(scope, project)
            example = DatasetService._example(scope, row, example_id)
            if example.status == "merged":
                raise Conflict(
                    f"example {example_id} was merged into {example.duplicate_of}; review that one",
                    code="example_merged",
                )
            who = f"{reviewer} ({self.actor})" if reviewer else self.actor
            if decision == "edited":
                question, answer = _apply_edit(example, question, answer)
            scope.review_example(example, decision, who, question, answer, note)
            scope.audit(
                self.actor,
                f"example.{decision}",
                f"{row.slug}/{example.key}",
                {"example_id": example.id, "reviewer": who, "note": note},
            )
            return views.example(example)


def _apply_edit(
    example: DatasetExample, question: str | None, answer: str | None
) -> tuple[str, str]:
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
    example.question, example.answer, example.messages = new_question, new_answer, messages
    return new_question, new_answer


def _example_page(
    scope: TenantScope,
    project_id: str,
    generation: str,
    limit: int,
    offset: int,
    filters: dict[str, Any],
) -> schemas.ExamplePage:
    """One page of a generation's examples matching `filters`, with the matching total."""
    items = scope.examples(project_id, generation, limit=limit, offset=offset, **filters)
    return schemas.ExamplePage(
        items=[views.example(e) for e in items],
        total=scope.count_examples(project_id, generation, **filters),
        limit=limit,
        offset=offset,
    )
