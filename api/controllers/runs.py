"""Runs: materialisations of the project's graph through Dagster's run queue."""

from __future__ import annotations

from litestar import Controller, get, post

from api import schemas
from api.security import requires_scope
from api.services.runs import RunService


class RunController(Controller):
    path = "/v1/projects/{project:str}/runs"
    tags = ["runs"]

    @post(
        "/",
        operation_id="createRun",
        sync_to_thread=True,
        status_code=202,
        guards=[requires_scope("train")],
    )
    def create(
        self, project: str, runs: RunService, data: schemas.RunCreate | None = None
    ) -> schemas.Run:
        """Start a run through Dagster: `pipeline` materialises the whole graph (documents to
        deployment), `training` the adapter alone on the latest dataset version, with
        `hyperparameters` and an approved `base_model`. Both need the project's data-rights
        confirmation, a base model approved for the tenant, and room in the plan's run quotas."""
        return runs.create(project, data or schemas.RunCreate())

    @post(
        "/{run_id:str}/retry",
        operation_id="retryRun",
        sync_to_thread=True,
        status_code=202,
        guards=[requires_scope("train")],
    )
    def retry(self, project: str, run_id: str, runs: RunService) -> schemas.Run:
        """Run a failed or cancelled run again with the same configuration; a training run
        resumes from its latest checkpoint."""
        return runs.retry(project, run_id)

    @get("/", operation_id="listRuns", sync_to_thread=True, guards=[requires_scope("read")])
    def list(self, project: str, runs: RunService) -> list[schemas.Run]:
        return runs.list(project)

    @get(
        "/{run_id:str}", operation_id="getRun", sync_to_thread=True, guards=[requires_scope("read")]
    )
    def get(self, project: str, run_id: str, runs: RunService) -> schemas.Run:
        """The run's status (refreshed from Dagster) and its event timeline."""
        return runs.get(project, run_id)

    @post(
        "/{run_id:str}/cancel",
        operation_id="cancelRun",
        sync_to_thread=True,
        status_code=202,
        guards=[requires_scope("train")],
    )
    def cancel(self, project: str, run_id: str, runs: RunService) -> schemas.Run:
        """Ask Dagster to terminate the run."""
        return runs.cancel(project, run_id)
