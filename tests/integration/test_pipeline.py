"""The whole graph, materialised for one partition against PostgreSQL and a real S3 server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from assets.retrieval.hybrid import load_index
from pipelines.definitions import all_assets, all_checks, defs
from resources.antivirus import Antivirus
from resources.database import Database
from resources.io_manager import ObjectStoreManifestIOManager
from resources.model_runtime import ModelRuntime
from resources.object_store import ObjectStoreResource, ProjectStore
from resources.repository import TenantScope, create_tenant
from resources.tables import Deployment, Document, RunEvent
from tests.conftest import BAD_SAMPLES, ROOT, sample_files, sha256
from tests.integration.test_definitions import BRANCHES, SPINE

pytestmark = pytest.mark.slow

DOCS = [
    "workplace-faq.md",
    "annual-leave-policy.docx",
    "it-security-policy.pdf",
    "office-directory.csv",
    "code-of-conduct.html",
    "benefits-summary.txt",
]


def seed(
    db: Database, store: ObjectStoreResource, tenant: str, project: str, files: list[Path]
) -> None:
    with db.session() as session:
        row, _ = create_tenant(session, tenant, tenant)
        scope = TenantScope(session, row.id)
        proj = scope.create_project(project, project, {})
        pstore = store.project(tenant, project)
        for path in files:
            data = path.read_bytes()
            digest = sha256(data)
            pstore.put_bytes(f"raw/{digest}", data)
            scope.add_document(
                proj.id,
                filename=path.name,
                sha256=digest,
                size_bytes=len(data),
                object_key=pstore.key(f"raw/{digest}"),
                meta={},
            )


def postgres_instance(db_name: str, home: Path, monkeypatch) -> dg.DagsterInstance:
    """A Dagster instance configured by the project's own dagster.postgres.yaml."""
    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_USER", "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "")
    monkeypatch.setenv("DAGSTER_PG_DB", db_name)
    monkeypatch.setenv("DAGSTER_MAX_CONCURRENT_RUNS", "1")
    home.mkdir()
    shutil.copy(ROOT / "dagster.postgres.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def test_whole_graph_on_postgres_and_s3(
    make_postgres_db, s3_server, clamd, base_model_path, tmp_path, monkeypatch
):
    _, app_url = make_postgres_db()
    dagster_db, _ = make_postgres_db()
    db = Database(url=app_url)
    db.migrate()
    store = ObjectStoreResource(
        backend="s3",
        endpoint=s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        bucket=f"it-{tmp_path.name[-8:].lower().replace('_', '-')}x",
    )
    image = tmp_path / "scan.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    files = sample_files(DOCS) + [BAD_SAMPLES / "empty.txt", BAD_SAMPLES / "broken.pdf", image]
    seed(db, store, "acme", "handbook", files)

    instance = postgres_instance(dagster_db, tmp_path / "dagster_home", monkeypatch)
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    instance.add_dynamic_partitions("tenant_project", ["acme__handbook"])
    resources = {
        "db": db,
        "store": store,
        "runtime": ModelRuntime(),
        "antivirus": Antivirus(address=clamd.address, required=True),
        "io_manager": ObjectStoreManifestIOManager(store=store),
    }
    result = dg.materialize(
        [*all_assets, *all_checks],
        selection=[*SPINE, "retrieval_index"],  # the pipeline job's selection
        partition_key="acme__handbook",
        instance=instance,
        resources=resources,
        run_config={
            "ops": {
                "adapter": {"config": {"max_steps": 2, "batch_size": 2, "max_length": 384}},
                "eval_report": {
                    "config": {"max_questions": 3, "max_new_tokens": 24, "refusal_questions": 2}
                },
            }
        },
    )
    assert result.success
    assert set(defs.resolve_asset_graph().get_all_asset_keys()) == {
        dg.AssetKey(k) for k in [*SPINE, *BRANCHES]
    }

    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["no_document_in_two_splits"] is True
    assert checks["no_gold_leak"] is True

    with db.session() as session:
        docs = {d.filename: d for d in session.query(Document)}
        assert docs["empty.txt"].status == "quarantined"
        assert docs["empty.txt"].failure_reason.startswith("empty")
        assert docs["broken.pdf"].status == "quarantined"
        assert docs["broken.pdf"].failure_reason.startswith("corrupt")
        assert docs["scan.png"].status == "quarantined"
        assert docs["scan.png"].failure_reason.startswith("unsupported_type")
        assert (
            docs["it-security-policy.pdf"].status == "ready"
            and docs["it-security-policy.pdf"].page_count == 4
        )
        assert all(docs[name].status == "ready" for name in DOCS)
        deployment = session.query(Deployment).one()
        assert deployment.status == "active" and deployment.version == 1
        stages = [
            e.stage for e in session.query(RunEvent).filter(RunEvent.kind == "stage_finished")
        ]
        assert [s for s in stages if s != "retrieval_index"] == SPINE
        assert (
            stages.index("splits") < stages.index("retrieval_index") < stages.index("eval_report")
        )

    pstore: ProjectStore = store.project("acme", "handbook")
    manifest = pstore.get_json(deployment.manifest_key)
    # Everything the pipeline wrote lives under the project's own prefix in the bucket.
    raw_keys = store.get_store().list_keys("")
    assert raw_keys and all(k.startswith("tenants/acme/projects/handbook/") for k in raw_keys)
    assert "adapter_model.safetensors" in manifest["files"]
    assert pstore.exists(f"{manifest['adapter_key']}/adapter_model.safetensors")

    split_manifest = pstore.get_json(f"datasets/{manifest['dataset_version']}/manifest.json")
    doc_sets = [set(s["documents"]) for s in split_manifest["splits"].values()]
    assert not (doc_sets[0] & doc_sets[1] or doc_sets[0] & doc_sets[2] or doc_sets[1] & doc_sets[2])
    assert all(s["examples"] > 0 for s in split_manifest["splits"].values())

    report = pstore.get_json(manifest["report_key"])
    assert report["questions"] == 3
    assert set(report["summary"]) == {"base", "candidate"}  # no earlier deployment to compare
    for figures in report["summary"].values():
        for metric in (
            "fuzzy_match",
            "semantic_similarity",
            "refusal_accuracy",
            "citation_accuracy",
        ):
            assert 0.0 <= figures[metric] <= 1.0
        assert figures["latency_p95_s"] >= figures["latency_p50_s"] > 0
    assert report["gate"]["passed"] and report["gate"]["compared_with"] == "base"
    assert len(report["rows"]) == report["questions"] + report["refusal_questions"]
    page = pstore.get_text(manifest["report_key"].replace(".json", ".html"))
    assert "<table>" in page and page.count("data:image/png;base64,") == 2
    index = load_index(pstore, manifest["index_key"])
    assert len(index) == len(pstore.get_text(manifest["chunks_key"]).splitlines())

    examples = [
        json.loads(line)
        for line in pstore.get_text(
            f"datasets/{manifest['dataset_version']}/examples.jsonl"
        ).splitlines()
    ]
    chunks = {
        json.loads(line)["id"]: json.loads(line)
        for line in pstore.get_text(manifest["chunks_key"]).splitlines()
    }
    grounded = [e for e in examples if e["citations"]]  # refusal/escalation examples cite nothing
    assert grounded and len(grounded) < len(examples)
    for example in grounded[:20]:
        chunk = chunks[example["citations"][0]]
        assert chunk["document_id"] == example["document_id"]
        assert chunk["text"] in example["messages"][1]["content"]
