"""Datasets: versions and their manifests, examples by split with filters, files, and the
review queue (approve, reject, edit; each decision recorded with reviewer and time, audited)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post

from api import schemas
from api.schemas import INT64_MAX, checked_parameter
from api.security import requires_scope
from api.services.datasets import MAX_PAGE, SPLITS, DatasetService, ReviewService


class DatasetController(Controller):
    path = "/v1/projects/{project:str}/datasets"
    tags = ["datasets"]
    guards = [requires_scope("read")]

    @get("/", operation_id="listDatasetVersions", sync_to_thread=True)
    def versions(self, project: str, datasets: DatasetService) -> list[schemas.DatasetVersion]:
        """Dataset versions, newest first, with their counts per split and kind."""
        return datasets.versions(project)

    @get("/{version:str}", operation_id="getDatasetVersion", sync_to_thread=True)
    def detail(
        self, project: str, version: str, datasets: DatasetService
    ) -> schemas.DatasetVersionDetail:
        """The version's manifest: counts per split and kind, source documents, generator
        settings, review state, file keys and hashes."""
        return datasets.detail(project, version)

    @get("/{version:str}/examples", operation_id="listDatasetExamples", sync_to_thread=True)
    def examples(
        self,
        project: str,
        version: str,
        datasets: DatasetService,
        split: Annotated[str | None, checked_parameter(enum=list(SPLITS))] = None,
        kind: str | None = None,
        status: str | None = None,
        generator: str | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        limit: Annotated[int, checked_parameter(minimum=1, maximum=MAX_PAGE)] = 100,
        offset: Annotated[int, checked_parameter(minimum=0, maximum=INT64_MAX)] = 0,
    ) -> schemas.ExamplePage:
        """The examples of the version's generation (current review state), filtered by split,
        kind, status, generator (prefix) and score."""
        return datasets.examples(
            project,
            version,
            limit,
            offset,
            split=split,
            kind=kind,
            status=status,
            generator=generator,
            min_score=min_score,
            max_score=max_score,
        )

    @get(
        "/{version:str}/files/{filename:str}",
        operation_id="downloadDatasetSplit",
        sync_to_thread=True,
    )
    def file(self, project: str, version: str, filename: str, datasets: DatasetService) -> Response:
        """One split as JSONL (chat format) or Parquet (`train.jsonl`, `gold.parquet`, ...); both
        load with `datasets.load_dataset`."""
        found = datasets.split_file(project, version, filename)
        return Response(
            found.data,
            media_type=found.media_type,
            headers={"content-disposition": f'attachment; filename="{found.filename}"'},
        )


class ReviewController(Controller):
    path = "/v1/projects/{project:str}/review"
    tags = ["datasets"]

    @get("/", operation_id="listReviewQueue", sync_to_thread=True, guards=[requires_scope("read")])
    def queue(
        self,
        project: str,
        reviews: ReviewService,
        status: str = "pending",
        split: str | None = None,
        kind: str | None = None,
        limit: Annotated[int, checked_parameter(minimum=1, maximum=MAX_PAGE)] = 100,
        offset: Annotated[int, checked_parameter(minimum=0, maximum=INT64_MAX)] = 0,
    ) -> schemas.ExamplePage:
        """The latest generation's examples waiting for review (low scores and a random sample),
        lowest score first; `status` shows decided ones instead."""
        return reviews.queue(project, status, split, kind, limit, offset)

    @post(
        "/{example_id:str}/approve",
        operation_id="approveExample",
        sync_to_thread=True,
        guards=[requires_scope("write")],
    )
    def approve(
        self,
        project: str,
        example_id: str,
        reviews: ReviewService,
        data: schemas.ReviewNote | None = None,
    ) -> schemas.Example:
        """Approve: training uses the example whatever its score."""
        data = data or schemas.ReviewNote()
        return reviews.decide(project, example_id, "approved", data.note, data.reviewer)

    @post(
        "/{example_id:str}/reject",
        operation_id="rejectExample",
        sync_to_thread=True,
        guards=[requires_scope("write")],
    )
    def reject(
        self,
        project: str,
        example_id: str,
        reviews: ReviewService,
        data: schemas.ReviewNote | None = None,
    ) -> schemas.Example:
        """Reject: training never uses the example (nor the same example in later generations)."""
        data = data or schemas.ReviewNote()
        return reviews.decide(project, example_id, "rejected", data.note, data.reviewer)

    @post(
        "/{example_id:str}/edit",
        operation_id="editExample",
        sync_to_thread=True,
        guards=[requires_scope("write")],
    )
    def edit(
        self, project: str, example_id: str, data: schemas.ReviewEdit, reviews: ReviewService
    ) -> schemas.Example:
        """Edit the question and/or answer (the original is kept); the edited example is approved."""
        return reviews.decide(
            project,
            example_id,
            "edited",
            data.note,
            data.reviewer,
            data.question,
            data.answer,
        )
