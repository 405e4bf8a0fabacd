"""A failed run says what to do, in the API and in the run's timeline: the `splits` asset,
materialised on a real Dagster instance (PostgreSQL storage) against the application database,
first stops for a real reason (the review policy `wait` with a pending example), then, once the
person has done what it said, fails its blocking `no_gold_leak` check. Runs are started,
retried and read through the API; a small stand-in for the Dagster webserver launches them
with `dg.materialize` and answers from the same Dagster instance."""

from __future__ import annotations

import dagster as dg
import pytest
from litestar.testing import TestClient

from api.app import create_app
from assets.dataset.export import to_jsonl
from pipelines.definitions import all_assets, all_checks
from resources.antivirus import Antivirus
from resources.database import Database
from resources.io_manager import ObjectStoreManifestIOManager
from resources.model_runtime import ModelRuntime
from resources.object_store import ObjectStoreResource
from resources.orchestrator import STATUS, DagsterOrchestrator, RunInfo
from resources.repository import TenantScope, create_tenant
from resources.tables import DatasetExample, Run, RunEvent
from tests.integration.test_pipeline import postgres_instance

GENERATION = "gen-failures"
PARTITION = "acme__handbook"


class InstanceOrchestrator(DagsterOrchestrator):
    """Stands in for the Dagster webserver and its run queue: `launch` materialises the
    selection in process on the test's instance, `run` reports from that instance."""

    def __init__(self, instance: dg.DagsterInstance, resources: dict, selection: list[str]):
        super().__init__(url="http://127.0.0.1:9", timeout=2)
        self.instance, self.resources, self.selection = instance, resources, selection
        self.results: list[dg.ExecuteInProcessResult] = []

    def launch(self, partition: str, run_config: dict, tags: dict, job: str = "") -> str:
        result = dg.materialize(
            [*all_assets, *all_checks],
            selection=self.selection,
            partition_key=partition,
            instance=self.instance,
            resources=self.resources,
            run_config=run_config,
            tags=tags,
            raise_on_error=False,
        )
        self.results.append(result)
        return result.run_id

    def run(self, dagster_run_id: str) -> RunInfo:
        run = self.instance.get_run_by_id(dagster_run_id)
        assert run is not None
        steps = [
            {"stepKey": s.step_key, "status": s.status.value if s.status else None}
            for s in self.instance.get_run_step_stats(dagster_run_id)
        ]
        status = run.status.value
        return RunInfo(dagster_run_id, STATUS[status], status, None, None, steps)


def _example(key: str, split: str, status: str, question: str, answer: str) -> dict:
    return {
        "key": key,
        "document_id": f"doc-{split}",
        "split": split,
        "kind": "faq",
        "generator": "deterministic-v1",
        "question": question,
        "answer": answer,
        "messages": [
            {"role": "system", "content": "Answer from the handbook."},
            {"role": "user", "content": f"Question: {question}"},
            {"role": "assistant", "content": answer},
        ],
        "citations": [],
        "context": [],
        "scores": {"overall": 0.9},
        "score": 0.9,
        "status": status,
        "review_reason": "low_score" if status == "pending" else None,
        "duplicate_of": None,
        "original": {},
    }


@pytest.fixture
def setup(make_postgres_db, tmp_path, monkeypatch):
    _, app_url = make_postgres_db()
    dagster_db, _ = make_postgres_db()
    db = Database(url=app_url)
    db.migrate()
    store = ObjectStoreResource(backend="local", root=str(tmp_path / "objects"))
    with db.session() as session:
        tenant, key = create_tenant(session, "acme", "Acme")
        scope = TenantScope(session, tenant.id)
        project = scope.create_project("handbook", "Handbook", {"review_policy": "wait"})
        scope.add_document(
            project.id,
            filename="leave.md",
            sha256="0" * 64,
            size_bytes=10,
            object_key="raw/0",
            meta={},
        )
        scope.replace_examples(
            project.id,
            GENERATION,
            [
                _example("gold-1", "gold", "auto_accepted", "How many days of leave?", "25 days."),
                _example(
                    "train-1", "train", "auto_accepted", "Who approves expenses?", "Managers."
                ),
                _example("train-2", "train", "pending", "Where is the office?", "In Leeds."),
            ],
        )
    pstore = store.project("acme", "handbook")
    chunks_key = f"datasets/generations/{GENERATION}/chunks.jsonl"
    pstore.put_bytes(chunks_key, to_jsonl([{"id": "c1", "text": "Leave is 25 days."}]))
    pstore.put_json(  # what the `examples` asset's IO manager would have stored
        "manifests/examples.json",
        {
            "generation": GENERATION,
            "dataset_version": GENERATION,
            "chunks_key": chunks_key,
            "documents": [],
            "generator": {"names": ["deterministic-v1"]},
            "chunker": "test",
            "scorer": "test",
        },
    )
    instance = postgres_instance(dagster_db, tmp_path / "dagster_home", monkeypatch)
    instance.add_dynamic_partitions("tenant_project", [PARTITION])
    resources = {
        "db": db,
        "store": store,
        "runtime": ModelRuntime(),
        "antivirus": Antivirus(address="", required=False),
        "io_manager": ObjectStoreManifestIOManager(store=store),
    }
    orchestrator = InstanceOrchestrator(instance, resources, ["splits", "adapter"])
    app = create_app(database=db, store=store.get_store(), orchestrator=orchestrator)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {key}"}
        rights = client.put(
            "/v1/projects/handbook/data-rights", json={"confirmed_by": "Jo"}, headers=headers
        )
        assert rights.status_code == 200, rights.text
        yield db, instance, orchestrator, client, headers


def _row_ids(db: Database) -> dict[str, str]:
    with db.session() as session:
        return {r.key: r.id for r in session.query(DatasetExample)}


def _events(db: Database, run_id: str, kind: str) -> list[RunEvent]:
    with db.session() as session:
        events = session.query(RunEvent).filter_by(run_id=run_id, kind=kind)
        return list(events.order_by(RunEvent.at, RunEvent.id))


def _step_failure(result: dg.ExecuteInProcessResult, step: str):
    return next(
        e for e in result.all_events if e.event_type_value == "STEP_FAILURE" and e.step_key == step
    )


def test_a_failed_stage_and_a_failed_blocking_check_say_what_to_do(setup):
    db, instance, orchestrator, client, headers = setup
    ids = _row_ids(db)

    # --- a stage fails for a real reason: the review queue is not empty under `wait` --------
    created = client.post("/v1/projects/handbook/runs", json={"kind": "pipeline"}, headers=headers)
    assert created.status_code == 202, created.text
    run_id = created.json()["id"]
    first = orchestrator.results[-1]
    assert not first.success

    [failed] = _events(db, run_id, "stage_failed")
    assert failed.stage == "splits"
    assert set(failed.data) == {"seconds", "code", "cause", "action", "details"}
    assert failed.data["code"] == "review_pending"
    assert "1 example(s) wait for review" in failed.data["cause"]
    assert ids["train-2"] in failed.data["cause"]  # names the example
    assert "GET /v1/projects/handbook/review" in failed.data["action"]
    assert failed.data["details"]["example_ids"] == [ids["train-2"]]
    assert failed.message.startswith("splits failed: ") and " What to do: " in failed.message
    # Dagster's UI says the same: a Failure with the explained text and the details
    failure_data = _step_failure(first, "splits").step_failure_data
    assert failure_data.user_failure_data.description == failed.message
    assert failure_data.user_failure_data.metadata["code"].value == "review_pending"
    assert "adapter" not in {
        e.asset_key.to_user_string() for e in first.get_asset_materialization_events()
    }

    shown = client.get(f"/v1/projects/handbook/runs/{run_id}", headers=headers).json()
    assert shown["status"] == "failed"
    assert shown["error"] == failed.message
    assert "Dagster UI" not in shown["error"]
    assert shown["failure"] == {
        "stage": "splits",
        "code": "review_pending",
        "cause": failed.data["cause"],
        "action": failed.data["action"],
        "details": failed.data["details"],
    }

    # --- doing what it said; then a blocking check fails ------------------------------------
    reject = client.post(f"/v1/projects/handbook/review/{ids['train-2']}/reject", headers=headers)
    assert reject.status_code == 201, reject.text
    # ...and a reviewer copies the gold question and answer into a training example: a leak
    leak = client.post(
        f"/v1/projects/handbook/review/{ids['train-1']}/edit",
        json={"question": "How many days of leave?", "answer": "25 days."},
        headers=headers,
    )
    assert leak.status_code == 201, leak.text
    retried = client.post(f"/v1/projects/handbook/runs/{run_id}/retry", headers=headers)
    assert retried.status_code == 202, retried.text
    second = orchestrator.results[-1]

    # What Dagster does with a failed blocking check: the asset materialises, the check fails
    # with ERROR, the step fails (DagsterAssetCheckFailedError), what depends on the asset
    # never runs and the run fails.
    assert not second.success
    checks = {e.check_name: e for e in second.get_asset_check_evaluations()}
    assert not checks["no_gold_leak"].passed
    assert checks["no_gold_leak"].severity == dg.AssetCheckSeverity.ERROR
    materialized = {e.asset_key.to_user_string() for e in second.get_asset_materialization_events()}
    assert materialized == {"splits"}
    error = _step_failure(second, "splits").step_failure_data.error
    assert error.cls_name == "DagsterAssetCheckFailedError"
    assert instance.get_run_by_id(second.run_id).status == dg.DagsterRunStatus.FAILURE
    stats = {s.step_key: s.status.value for s in instance.get_run_step_stats(second.run_id)}
    assert stats == {"splits": "FAILURE"}  # adapter: no step stats, it never started

    # Our timeline: the stage itself finished, then its check failed; adapter never started.
    with db.session() as session:
        timeline = [
            (e.kind, e.stage, e.message)
            for e in session.query(RunEvent).filter_by(run_id=run_id).order_by(RunEvent.id)
        ]
    retry_at = timeline.index(("status", None, "retry requested"))
    after = [(kind, stage) for kind, stage, _ in timeline[retry_at:]]
    assert after.index(("stage_finished", "splits")) < after.index(("check_failed", "splits"))
    assert ("stage_failed", "splits") not in after
    assert not any(stage == "adapter" for _, stage, _ in timeline)
    [check] = _events(db, run_id, "check_failed")
    assert check.data["check"] == "no_gold_leak" and check.data["code"] == "gold_leak"
    assert ids["train-1"] in check.data["cause"]
    assert check.data["details"]["example_ids"] == [ids["train-1"]]
    assert check.data["details"]["question_leaks"] == 1
    assert "/v1/projects/handbook/review/{example_id}/edit" in check.data["action"]

    shown = client.get(f"/v1/projects/handbook/runs/{run_id}", headers=headers).json()
    assert shown["status"] == "failed" and shown["dagster_run_id"] == second.run_id
    assert shown["error"] == check.message  # this attempt's failure, not the earlier one
    assert shown["failure"]["code"] == "gold_leak" and shown["failure"]["stage"] == "splits"
    assert shown["failure"]["details"]["example_ids"] == [ids["train-1"]]
    listed = client.get("/v1/projects/handbook/runs", headers=headers).json()
    assert [(r["id"], r["failure"]["code"]) for r in listed] == [(run_id, "gold_leak")]
    assert listed[0]["events"] == []


def test_a_step_that_fails_before_its_stage_names_the_step_and_the_dagster_run(setup):
    db, instance, orchestrator, client, headers = setup

    class CrashedRun(DagsterOrchestrator):
        def run(self, dagster_run_id: str) -> RunInfo:
            steps = [{"stepKey": "examples", "status": "FAILURE"}]
            return RunInfo(dagster_run_id, "failed", "FAILURE", None, None, steps)

    from api.services.runs import refresh

    with db.session() as session:
        run = session.query(Run).first()
        assert run is None
        tenant_id = session.query(DatasetExample).first().tenant_id
        scope = TenantScope(session, tenant_id)
        project_id = session.query(DatasetExample).first().project_id
        run = scope.add_run(project_id, "pipeline", {})
        run.dagster_run_id = "dagster-run-42"
        run.status = "running"
        refresh(scope, run, CrashedRun(url="http://127.0.0.1:9"))
        assert run.status == "failed"
        assert "examples" in run.error and "dagster-run-42" in run.error
        assert "Dagster UI" in run.error and f"/runs/{run.id}/retry" in run.error
        run_id = run.id
    [event] = _events(db, run_id, "run_failed")
    assert event.stage == "examples" and event.data["code"] == "step_failed"
    assert event.data["details"] == {
        "failed_steps": ["examples"],
        "dagster_run_id": "dagster-run-42",
    }
    shown = client.get(f"/v1/projects/handbook/runs/{run_id}", headers=headers).json()
    assert shown["failure"]["code"] == "step_failed" and shown["error"] == event.message
