"""Promotion, deployment and rollback for real: three runs of the graph on PostgreSQL with the
real model. The first adapter deploys (v1); a second, deliberately ruined adapter (learning rate
1.0) is evaluated against v1 and blocked by the promotion gate, so nothing is deployed; a third,
sound one deploys as v2. Then, over the HTTP API: the evaluations and the gate's reasons, the
rollback to v1 (audited), routing by version, and another tenant reaching none of it."""

from __future__ import annotations

import dagster as dg
import pytest
from litestar.testing import TestClient

from api.app import create_app
from assets.evaluation.report import DEFAULT_MARGINS
from pipelines.definitions import all_assets, all_checks, defs
from resources.antivirus import Antivirus
from resources.database import Database
from resources.io_manager import ObjectStoreManifestIOManager
from resources.model_runtime import ModelRuntime
from resources.object_store import ObjectStoreResource
from resources.orchestrator import DagsterOrchestrator
from resources.repository import TenantScope
from resources.tables import AuditEvent, Deployment, Evaluation, Project, RunEvent
from tests.conftest import OPERATOR, sample_files
from tests.integration.test_pipeline import seed

pytestmark = pytest.mark.slow

DOCS = [
    "workplace-faq.md",
    "annual-leave-policy.docx",
    "benefits-summary.txt",
    "it-security-policy.pdf",
]
EVAL = {"max_questions": 4, "refusal_questions": 2, "max_new_tokens": 24, "latency_samples": 1}
PACKAGED = ["adapter", "retrieval_index", "eval_report", "deployment_package"]


def _materialize(resources, instance, adapter_config: dict, selection=None):
    return dg.materialize(
        [*all_assets, *all_checks],
        selection=selection,
        partition_key="acme__handbook",
        instance=instance,
        resources=resources,
        raise_on_error=False,
        run_config={
            "ops": {
                "adapter": {
                    "config": {"max_steps": 2, "batch_size": 2, "max_length": 384, **adapter_config}
                },
                "eval_report": {"config": EVAL},
            }
        },
    )


def test_gate_blocks_a_worse_adapter_and_rollback(
    make_postgres_db, clamd, base_model_path, tmp_path
):
    _, app_url = make_postgres_db()
    db = Database(url=app_url)
    db.migrate()
    store = ObjectStoreResource(backend="local", root=str(tmp_path / "objects"))
    seed(db, store, "acme", "handbook", sample_files(DOCS))
    with db.session() as session:  # 4 questions: margins wide enough for an answer or two to flip
        project = session.query(Project).one()
        project.settings = {"promotion": {"margins": dict.fromkeys(DEFAULT_MARGINS, 0.2)}}
    (tmp_path / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "dagster"))
    instance.add_dynamic_partitions("tenant_project", ["acme__handbook"])
    resources = {
        "db": db,
        "store": store,
        "runtime": ModelRuntime(),
        "antivirus": Antivirus(address=clamd.address, required=True),
        "io_manager": ObjectStoreManifestIOManager(store=store),
    }
    pipeline = [
        k for k in (a.key for a in all_assets) if k.to_user_string() != "deployment_evaluation"
    ]

    first = _materialize(resources, instance, {}, selection=pipeline)
    assert first.success
    gate = {e.check_name: e for e in first.get_asset_check_evaluations()}["promotion_gate"]
    assert gate.passed

    ruined = _materialize(
        resources, instance, {"learning_rate": 1.0, "seed": 1}, selection=PACKAGED
    )
    assert not ruined.success
    gate = {e.check_name: e for e in ruined.get_asset_check_evaluations()}["promotion_gate"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    materialized = {e.asset_key.to_user_string() for e in ruined.get_asset_materialization_events()}
    assert "eval_report" in materialized and "deployment_package" not in materialized

    with db.session() as session:
        assert [d.version for d in session.query(Deployment)] == [1]
        blocked = session.query(Evaluation).filter(Evaluation.passed.is_(False)).one()
        assert blocked.kind == "candidate" and blocked.compared_with == "deployment v1"
        assert blocked.reasons and all(
            "worse than active" in r for r in blocked.reasons if "latency" not in r
        )
        assert set(blocked.summary) == {"base", "candidate", "active"}
        # Users get the evidence quoted whichever model answers; what the ruined adapter
        # writes itself is what the gate catches.
        assert (
            blocked.summary["candidate"]["model_semantic_similarity"]
            < blocked.summary["active"]["model_semantic_similarity"]
        )
        assert any("model_semantic_similarity" in r for r in blocked.reasons)
        events = [e for e in session.query(RunEvent) if e.kind == "promotion_blocked"]
        assert (
            len(events) == 1
            and "promotion gate blocked deployment (vs active)" in events[0].message
        )
        assert (
            session.query(AuditEvent).filter(AuditEvent.action == "promotion.blocked").count() == 1
        )

    sound = _materialize(resources, instance, {"seed": 2}, selection=PACKAGED)
    assert sound.success
    with db.session() as session:
        versions = {d.version: d.status for d in session.query(Deployment)}
        assert versions == {1: "inactive", 2: "active"}
        v2 = session.query(Deployment).filter(Deployment.version == 2).one()
        manifest = v2.manifest
        assert manifest["runtime"]["kind"] == "transformers"
        assert manifest["index_key"].startswith("indexes/")
        assert manifest["gate"]["passed"] is True
        assert manifest["gguf_lora"]["key"].endswith("adapter-lora.gguf")

    # --- the sensor evaluates adapters materialised outside the pipeline job ----------------
    from pipelines.sensors import new_adapter_evaluation, nightly_reevaluation

    with dg.partition_loading_context(dynamic_partitions_store=instance):
        request = new_adapter_evaluation.evaluate_tick(
            dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def())
        )
    requests = request.run_requests or []
    assert [r.partition_key for r in requests] == ["acme__handbook"]
    assert requests[0].run_key == f"{sound.run_id}:acme__handbook"  # the newest adapter

    # --- the nightly schedule re-evaluates the active deployment; a drop is a regression -------
    import datetime

    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=datetime.datetime(2026, 11, 28, 2, 0),
        resources={"db": db},
        repository_def=defs.get_repository_def(),
    )
    with dg.partition_loading_context(dynamic_partitions_store=instance):
        scheduled = nightly_reevaluation.evaluate_tick(context)
    assert [r.partition_key for r in scheduled.run_requests] == ["acme__handbook"]
    assert scheduled.run_requests[0].run_key == "acme__handbook:2026-11-28"
    with db.session() as session:  # as if v2 had been promoted with figures it no longer reaches
        v2 = session.query(Deployment).filter(Deployment.version == 2).one()
        manifest = dict(v2.manifest)
        manifest["metrics"] = {
            **manifest["metrics"],
            "candidate": {**manifest["metrics"]["candidate"], "semantic_similarity": 1.0},
        }
        v2.manifest = manifest
        project = session.query(Project).one()  # and no slack on that metric
        margins = {**project.settings["promotion"]["margins"], "semantic_similarity": 0.0}
        project.settings = {"promotion": {"margins": margins}}
    reeval = dg.materialize(
        [*all_assets, *all_checks],
        selection=["deployment_evaluation"],
        partition_key="acme__handbook",
        instance=instance,
        resources=resources,
        run_config={"ops": {"deployment_evaluation": {"config": EVAL}}},
    )
    assert reeval.success  # a regression is recorded (WARN), not a failed run
    check = {e.check_name: e for e in reeval.get_asset_check_evaluations()}["no_regression"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    with db.session() as session:
        regression = session.query(Evaluation).filter(Evaluation.kind == "scheduled").one()
        assert regression.deployment_version == 2 and not regression.passed
        assert regression.reasons[0].startswith("semantic_similarity")
        assert (
            session.query(AuditEvent).filter(AuditEvent.action == "deployment.regressed").count()
            == 1
        )

    # --- over the API --------------------------------------------------------------------------
    with TestClient(
        create_app(
            database=db,
            store=store.get_store(),
            orchestrator=DagsterOrchestrator(url="http://127.0.0.1:9"),
        )
    ) as client:
        with db.session() as session:
            tenant = session.query(Deployment).first().tenant_id
        key = _api_key(db, tenant)
        headers = {"Authorization": f"Bearer {key}"}
        evaluations = client.get("/v1/projects/handbook/evaluations", headers=headers).json()
        assert [(e["kind"], e["passed"]) for e in evaluations] == [
            ("scheduled", False),
            ("candidate", True),
            ("candidate", False),
            ("candidate", True),
        ]  # newest first
        evaluations = evaluations[1:]
        assert evaluations[1]["reasons"] and evaluations[1]["compared_with"] == "deployment v1"
        page = client.get(
            f"/v1/projects/handbook/evaluations/{evaluations[1]['id']}/report",
            params={"format": "html"},
            headers=headers,
        )
        assert page.status_code == 200 and "Promotion gate: blocked" in page.text
        report = client.get(
            f"/v1/projects/handbook/evaluations/{evaluations[1]['id']}/report", headers=headers
        ).json()
        # 4 gold questions and 2 refusal probes of the validation split, and the built-in
        # off-topic probes
        from assets.evaluation.assets import EvalConfig

        sources = [r["source"] for r in report["rows"]]
        assert report["gate"]["passed"] is False
        assert sources.count("builtin") == EvalConfig().probe_questions
        assert len(sources) - sources.count("builtin") == 6

        answer = client.post(
            "/v1/chat/completions",
            json={
                "model": "acme/handbook",
                "messages": [
                    {"role": "user", "content": "How many days of annual leave do I get?"}
                ],
                "max_tokens": 8,
            },
            headers=headers,
        ).json()
        assert answer["privatune"]["deployment_version"] == 2

        back = client.post(
            "/v1/projects/handbook/deployments/rollback", json={"reason": "test"}, headers=headers
        )
        assert back.status_code == 200, back.text
        assert back.json()["version"] == 1 and back.json()["status"] == "active"
        again = client.post("/v1/projects/handbook/deployments/rollback", json={}, headers=headers)
        assert again.status_code == 409 and again.json()["error"]["code"] == "no_earlier_deployment"
        forward = client.post(
            "/v1/projects/handbook/deployments/rollback", json={"to_version": 2}, headers=headers
        )
        assert forward.status_code == 400 and forward.json()["error"]["code"] == "invalid_rollback"
        answer = client.post(
            "/v1/chat/completions",
            json={
                "model": "acme/handbook",
                "messages": [
                    {"role": "user", "content": "How many days of annual leave do I get?"}
                ],
                "max_tokens": 8,
            },
            headers=headers,
        ).json()
        assert answer["privatune"]["deployment_version"] == 1
        pinned = client.post(
            "/v1/chat/completions",
            json={
                "model": "acme/handbook@2",
                "messages": [
                    {"role": "user", "content": "How many days of annual leave do I get?"}
                ],
                "max_tokens": 8,
            },
            headers=headers,
        ).json()
        assert pinned["privatune"]["deployment_version"] == 2
        with db.session() as session:
            audit = (
                session.query(AuditEvent)
                .filter(AuditEvent.action == "deployment.rolled_back")
                .one()
            )
            assert audit.data["from_version"] == 2 and audit.data["to_version"] == 1
            assert audit.data["reason"] == "test"

        # Serve v2 with llama.cpp instead (its adapter was exported to GGUF LoRA at packaging).
        switched = client.put(
            "/v1/projects/handbook/deployments/2/runtime",
            json={"kind": "llama_cpp", "n_threads": 1},
            headers=headers,
        )
        assert switched.status_code == 200, switched.text
        assert switched.json()["runtime"]["kind"] == "llama_cpp" and switched.json()["gguf_lora"]
        served = client.post(
            "/v1/chat/completions",
            json={
                "model": "acme/handbook@2",
                "messages": [
                    {"role": "user", "content": "How many days of annual leave do I get?"}
                ],
                "max_tokens": 8,
            },
            headers=headers,
        ).json()
        assert served["privatune"]["runtime"] == "llama_cpp"
        assert served["choices"][0]["message"]["content"] and served["citations"]
        incomplete = client.put(
            "/v1/projects/handbook/deployments/2/runtime", json={"kind": "openai"}, headers=headers
        )
        assert incomplete.status_code == 400
        assert incomplete.json()["error"]["code"] == "invalid_settings"
        with db.session() as session:
            changed = session.query(AuditEvent).filter(
                AuditEvent.action == "deployment.runtime_changed"
            )
            assert changed.count() == 1

        # Another tenant: none of acme's deployments, evaluations or models exist for it.
        other = client.post("/v1/tenants", json={"slug": "globex"}, headers=OPERATOR).json()[
            "api_key"
        ]
        other_headers = {"Authorization": f"Bearer {other}"}
        for model in ("acme/handbook", "acme/handbook@1", "acme/handbook@2"):
            denied = client.post(
                "/v1/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "leave?"}]},
                headers=other_headers,
            )
            assert denied.status_code == 404 and denied.json()["error"]["code"] == "model_not_found"
        assert (
            client.get("/v1/projects/handbook/evaluations", headers=other_headers).status_code
            == 404
        )
        assert (
            client.post(
                "/v1/projects/handbook/deployments/rollback", json={}, headers=other_headers
            ).status_code
            == 404
        )
        assert client.get("/v1/models", headers=other_headers).json()["data"] == []


def _api_key(db: Database, tenant_id: str) -> str:
    with db.session() as session:
        return TenantScope(session, tenant_id).create_api_key("test")[0]
