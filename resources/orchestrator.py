"""The API's handle on Dagster: partitions and runs through the webserver's GraphQL API, so
runs go through Dagster's own run queue and daemon."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from resources.settings import get_settings

PIPELINE_JOB = "project_pipeline"
TRAINING_JOB = "project_training"
PARTITIONS_DEF = "tenant_project"

_REPOSITORIES = """
query { repositoriesOrError { __typename
  ... on RepositoryConnection { nodes { name location { name } jobs { name } } }
  ... on PythonError { message } } }
"""
_ADD_PARTITION = """
mutation($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on AddDynamicPartitionSuccess { partitionKey }
    ... on DuplicateDynamicPartitionError { partitionName }
    ... on UnauthorizedError { message }
    ... on PythonError { message } } }
"""
_LAUNCH = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename
  ... on LaunchRunSuccess { run { runId status } }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on InvalidSubsetError { message }
  ... on PipelineNotFoundError { message }
  ... on RunConflict { message }
  ... on UnauthorizedError { message }
  ... on PythonError { message } } }
"""
_RUN = """
query($runId: ID!) { runOrError(runId: $runId) { __typename
  ... on Run { runId status startTime endTime
    stepStats { stepKey status startTime endTime } }
  ... on RunNotFoundError { message }
  ... on PythonError { message } } }
"""
_TERMINATE = """
mutation($runId: String!) { terminateRun(runId: $runId) { __typename
  ... on TerminateRunSuccess { run { runId } }
  ... on TerminateRunFailure { message }
  ... on RunNotFoundError { message }
  ... on UnauthorizedError { message }
  ... on PythonError { message } } }
"""

# Dagster run status -> ours.
STATUS = {
    "QUEUED": "queued",
    "NOT_STARTED": "queued",
    "STARTING": "queued",
    "MANAGED": "queued",
    "STARTED": "running",
    "SUCCESS": "succeeded",
    "FAILURE": "failed",
    "CANCELING": "cancelling",
    "CANCELED": "cancelled",
}


class OrchestratorError(RuntimeError):
    """Dagster refused a request or cannot be reached."""


@dataclass(frozen=True)
class RunInfo:
    dagster_run_id: str
    status: str
    dagster_status: str
    start_time: float | None
    end_time: float | None
    steps: list[dict[str, Any]]


class DagsterOrchestrator:
    def __init__(self, url: str | None = None, location: str | None = None, timeout: float = 30.0):
        settings = get_settings()
        self.url = (url or settings.dagster_url).rstrip("/") + "/graphql"
        self.location = location or settings.dagster_location or None
        self.timeout = timeout
        self._selector: dict[str, str] | None = None

    def _call(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = httpx.post(
                self.url, json={"query": query, "variables": variables or {}}, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise OrchestratorError(f"Dagster webserver at {self.url} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise OrchestratorError(
                f"Dagster answered HTTP {response.status_code}: {response.text[:300]}"
            )
        body = response.json()
        if body.get("errors"):
            raise OrchestratorError(f"Dagster GraphQL error: {body['errors'][0].get('message')}")
        return body["data"]

    def selector(self) -> dict[str, str]:
        """The repository that holds the pipeline job."""
        if self._selector is None:
            data = self._call(_REPOSITORIES)["repositoriesOrError"]
            if data["__typename"] != "RepositoryConnection":
                raise OrchestratorError(f"Dagster cannot list repositories: {data.get('message')}")
            for repo in data["nodes"]:
                jobs = {j["name"] for j in repo["jobs"]}
                if PIPELINE_JOB in jobs and self.location in (None, repo["location"]["name"]):
                    self._selector = {
                        "repositoryLocationName": repo["location"]["name"],
                        "repositoryName": repo["name"],
                    }
                    break
            else:
                raise OrchestratorError(
                    f"no code location with job {PIPELINE_JOB} is loaded in Dagster"
                )
        return self._selector

    def add_partition(self, key: str) -> None:
        data = self._call(
            _ADD_PARTITION, {"selector": self.selector(), "name": PARTITIONS_DEF, "key": key}
        )["addDynamicPartition"]
        if data["__typename"] not in (
            "AddDynamicPartitionSuccess",
            "DuplicateDynamicPartitionError",
        ):
            raise OrchestratorError(f"Dagster refused partition {key}: {data.get('message')}")

    def launch(
        self,
        partition: str,
        run_config: dict[str, Any],
        tags: dict[str, str],
        job: str = PIPELINE_JOB,
    ) -> str:
        params = {
            "selector": {**self.selector(), "jobName": job},
            "runConfigData": run_config,
            "executionMetadata": {
                "tags": [
                    {"key": k, "value": v}
                    for k, v in {**tags, "dagster/partition": partition}.items()
                ]
            },
            "mode": "default",
        }
        data = self._call(_LAUNCH, {"params": params})["launchRun"]
        if data["__typename"] != "LaunchRunSuccess":
            detail = data.get("message") or "; ".join(e["message"] for e in data.get("errors", []))
            raise OrchestratorError(f"Dagster refused the run ({data['__typename']}): {detail}")
        return data["run"]["runId"]

    def run(self, dagster_run_id: str) -> RunInfo:
        data = self._call(_RUN, {"runId": dagster_run_id})["runOrError"]
        if data["__typename"] != "Run":
            raise OrchestratorError(f"Dagster has no run {dagster_run_id}: {data.get('message')}")
        return RunInfo(
            dagster_run_id=data["runId"],
            status=STATUS.get(data["status"], data["status"].lower()),
            dagster_status=data["status"],
            start_time=data["startTime"],
            end_time=data["endTime"],
            steps=data["stepStats"] or [],
        )

    def terminate(self, dagster_run_id: str) -> None:
        data = self._call(_TERMINATE, {"runId": dagster_run_id})["terminateRun"]
        if data["__typename"] != "TerminateRunSuccess":
            raise OrchestratorError(
                f"Dagster could not cancel run {dagster_run_id}: {data.get('message')}"
            )
