"""The dataset builder end to end on PostgreSQL: examples and splits materialised on sample
documents, the review API changing what training reads, the review policy, the gold/train leak
check, the frozen gold set, exports loadable with `datasets`, and tenant isolation."""

from __future__ import annotations

import io
import json

import dagster as dg
import pytest
from litestar.testing import TestClient

from api.app import create_app
from assets.dataset.generate import GENERATOR
from pipelines.definitions import all_assets, all_checks
from resources.antivirus import Antivirus
from resources.database import Database
from resources.io_manager import ObjectStoreManifestIOManager
from resources.model_runtime import ModelRuntime
from resources.object_store import ObjectStoreResource
from resources.orchestrator import DagsterOrchestrator
from resources.repository import TenantScope, create_tenant, tenant_by_slug
from resources.tables import AuditEvent, DatasetExample, DocumentSplit
from tests.conftest import sample_files, sha256

pytestmark = pytest.mark.slow

DOCS = [
    "workplace-faq.md",
    "annual-leave-policy.docx",
    "it-security-policy.pdf",
    "office-directory.csv",
    "code-of-conduct.html",
    "benefits-summary.txt",
]
BUILD = [
    "raw_documents",
    "normalized_documents",
    "deduped_documents",
    "pii_screened_documents",
    "examples",
    "splits",
]


class Builder:
    def __init__(self, db: Database, store: ObjectStoreResource, antivirus: Antivirus) -> None:
        self.db, self.store, self.antivirus = db, store, antivirus
        with db.session() as session:
            tenant, self.key = create_tenant(session, "acme", "Acme")
            # A high threshold puts every example not scoring (almost) perfectly in the queue.
            TenantScope(session, tenant.id).create_project(
                "handbook", "Handbook", {"auto_accept_threshold": 0.97, "pii_policy": "allow"}
            )
            other, self.other_key = create_tenant(session, "globex", "Globex")
            TenantScope(session, other.id).create_project("handbook", "Handbook", {})
        self.instance = dg.DagsterInstance.ephemeral()
        self.instance.add_dynamic_partitions("tenant_project", ["acme__handbook"])
        self.pstore = store.project("acme", "handbook")

    def add(self, name: str, data: bytes) -> None:
        with self.db.session() as session:
            scope = TenantScope(session, tenant_by_slug(session, "acme").id)
            digest = sha256(data)
            self.pstore.put_bytes(f"raw/{digest}", data)
            scope.add_document(
                scope.project("handbook").id,
                filename=name,
                sha256=digest,
                size_bytes=len(data),
                object_key=self.pstore.key(f"raw/{digest}"),
                meta={},
            )

    def run(self, selection: list[str]) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [*all_assets, *all_checks],
            selection=selection,
            partition_key="acme__handbook",
            instance=self.instance,
            resources={
                "db": self.db,
                "store": self.store,
                "runtime": ModelRuntime(),
                "antivirus": self.antivirus,
                "io_manager": ObjectStoreManifestIOManager(store=self.store),
            },
            raise_on_error=False,
        )

    def manifest(self) -> dict:
        return self.pstore.get_json("manifests/splits.json")

    def split_rows(self, split: str, manifest: dict | None = None) -> list[dict]:
        manifest = manifest or self.manifest()
        text = self.pstore.get_text(manifest["splits"][split]["key"])
        return [json.loads(line) for line in text.splitlines()]


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, tuple[bool, str]]:
    return {
        e.check_name: (e.passed, e.severity.value) for e in result.get_asset_check_evaluations()
    }


@pytest.fixture
def builder(make_postgres_db, clamd, tmp_path) -> Builder:
    db = Database(url=make_postgres_db()[1])
    db.migrate()
    store = ObjectStoreResource(backend="local", root=str(tmp_path / "objects"))
    built = Builder(db, store, Antivirus(address=clamd.address, required=True))
    for path in sample_files(DOCS):
        built.add(path.name, path.read_bytes())
    return built


@pytest.fixture
def client(builder: Builder):
    app = create_app(
        database=builder.db,
        store=builder.store.get_store(),
        orchestrator=DagsterOrchestrator(url="http://127.0.0.1:9", timeout=2),
    )
    with TestClient(app) as c:
        yield c


def test_dataset_build_review_and_leak_check(builder: Builder, client: TestClient):
    first = builder.run(BUILD)
    assert first.success
    checks = _checks(first)
    assert checks["no_document_in_two_splits"] == (True, "ERROR")
    assert checks["no_gold_leak"] == (True, "ERROR")
    manifest = builder.manifest()

    # A document never crosses splits: its frozen assignment decides every example's split.
    with builder.db.session() as session:
        assigned = {r.document_id: r.split for r in session.query(DocumentSplit)}
        stored = session.query(DatasetExample).all()
    assert set(assigned.values()) == {"train", "validation", "gold"}
    for row in stored:
        if row.document_id:
            assert row.split == assigned[row.document_id]
    doc_sets = [set(manifest["splits"][s]["documents"]) for s in ("train", "validation", "gold")]
    assert not (doc_sets[0] & doc_sets[1] or doc_sets[0] & doc_sets[2] or doc_sets[1] & doc_sets[2])
    kinds = {row.kind for row in stored}
    assert {"refusal", "escalation", "faq", "table"} <= kinds
    assert all(row.scores.get("overall") is not None for row in stored)
    assert not any(r["kind"] in ("refusal", "escalation") for r in builder.split_rows("gold"))

    # The manifest: counts per split and kind, sources, generator settings, file hashes.
    assert manifest["counts"]["train"]["examples"] == len(builder.split_rows("train"))
    assert {d["filename"] for d in manifest["source_documents"]} == set(DOCS)
    assert manifest["generator"]["names"] == [GENERATOR]
    assert manifest["generator"]["settings"]["chunk_tokens"] == 256
    assert len(manifest["splits"]["gold"]["sha256"]) == 64

    headers = {"Authorization": f"Bearer {builder.key}"}
    versions = client.get("/v1/projects/handbook/datasets", headers=headers).json()
    assert [v["version"] for v in versions] == [manifest["dataset_version"]]
    version = manifest["dataset_version"]
    detail = client.get(f"/v1/projects/handbook/datasets/{version}", headers=headers).json()
    assert detail["manifest"]["splits"]["train"]["examples"] == len(builder.split_rows("train"))
    gold = client.get(
        f"/v1/projects/handbook/datasets/{version}/examples",
        params={"split": "gold", "limit": 500},
        headers=headers,
    ).json()
    assert gold["total"] > 0 and {e["split"] for e in gold["items"]} == {"gold"}
    parquet = client.get(
        f"/v1/projects/handbook/datasets/{version}/files/train.parquet", headers=headers
    )
    assert parquet.status_code == 200
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.num_rows == manifest["splits"]["train"]["examples"]
    assert table.column("messages").to_pylist()[0][-1]["role"] == "assistant"

    # The review queue: low scores and a sample; decisions change what training reads.
    queue = client.get("/v1/projects/handbook/review", params={"limit": 500}, headers=headers)
    pending = queue.json()["items"]
    assert pending and all(e["status"] == "pending" for e in pending)
    assert {e["review_reason"] for e in pending} <= {"low_score", "sample"}
    train_ids = {r["id"] for r in builder.split_rows("train")}
    low = next(e for e in pending if e["split"] == "train" and e["key"] not in train_ids)
    by_key = {r.key: r for r in stored}
    accepted = [
        r
        for r in stored
        if r.split == "train" and r.status == "auto_accepted" and r.key in train_ids
    ]
    to_reject, to_edit = accepted[0], accepted[1]
    r = client.post(
        f"/v1/projects/handbook/review/{to_reject.id}/reject",
        json={"note": "wrong", "reviewer": "ana"},
        headers=headers,
    )
    assert r.status_code == 201 and r.json()["status"] == "rejected"
    assert r.json()["reviewed_by"].startswith("ana") and r.json()["reviewed_at"]
    r = client.post(
        f"/v1/projects/handbook/review/{to_edit.id}/edit",
        json={"answer": "Edited by a reviewer: see the handbook."},
        headers=headers,
    )
    assert r.status_code == 201 and r.json()["status"] == "edited"
    assert r.json()["original"]["answer"] == by_key[to_edit.key].answer
    r = client.post(f"/v1/projects/handbook/review/{low['id']}/approve", headers=headers)
    assert r.status_code == 201 and r.json()["status"] == "approved"
    with builder.db.session() as session:
        actions = {a.action for a in session.query(AuditEvent)}
    assert {"example.rejected", "example.edited", "example.approved"} <= actions

    second = builder.run(["splits"])
    assert second.success
    train = {r["id"]: r for r in builder.split_rows("train")}
    assert to_reject.key not in train
    assert (
        train[to_edit.key]["messages"][-1]["content"] == "Edited by a reviewer: see the handbook."
    )
    assert low["key"] in train
    assert builder.manifest()["dataset_version"] != version  # a new version, the old one kept
    assert len(client.get("/v1/projects/handbook/datasets", headers=headers).json()) == 2

    # Policy `wait`: nothing is written while the queue holds examples.
    patched = client.patch(
        "/v1/projects/handbook", json={"settings": {"review_policy": "wait"}}, headers=headers
    )
    assert patched.status_code == 200
    waiting = builder.run(["splits"])
    assert not waiting.success
    for item in client.get(
        "/v1/projects/handbook/review", params={"limit": 500}, headers=headers
    ).json()["items"]:
        client.post(f"/v1/projects/handbook/review/{item['id']}/reject", headers=headers)
    assert builder.run(["splits"]).success
    assert {r["status"] for r in builder.split_rows("train")} <= {
        "auto_accepted",
        "edited",
        "approved",
    }

    # A reviewer who copies a gold question and answer into a training example makes a leak:
    # the ERROR check catches it and, blocking, keeps the adapter from training on it.
    gold_row = builder.split_rows("gold")[0]
    leaky = next(r for r in builder.split_rows("train") if r["kind"] != "refusal")
    with builder.db.session() as session:
        row_id = session.query(DatasetExample).filter_by(key=leaky["id"]).one().id
    r = client.post(
        f"/v1/projects/handbook/review/{row_id}/edit",
        json={"question": gold_row["question"], "answer": gold_row["answer"]},
        headers=headers,
    )
    assert r.status_code == 201
    leaked = builder.run(["splits"])
    assert _checks(leaked)["no_gold_leak"] == (False, "ERROR")
    leak_meta = next(
        e for e in leaked.get_asset_check_evaluations() if e.check_name == "no_gold_leak"
    ).metadata
    assert leak_meta["question_leaks"].value >= 1

    # Tenant isolation: another tenant sees none of it, even for its own project of that name.
    other = {"Authorization": f"Bearer {builder.other_key}"}
    assert client.get("/v1/projects/handbook/datasets", headers=other).json() == []
    for path in (
        f"/v1/projects/handbook/datasets/{version}",
        f"/v1/projects/handbook/datasets/{version}/examples",
        f"/v1/projects/handbook/datasets/{version}/files/train.jsonl",
    ):
        response = client.get(path, headers=other)
        assert response.status_code == 404, path
    assert client.get("/v1/projects/handbook/review", headers=other).json()["total"] == 0
    stolen = client.post(f"/v1/projects/handbook/review/{low['id']}/reject", headers=other)
    assert stolen.status_code == 404
    assert stolen.json()["error"]["code"] == "example_not_found"
    assert client.get("/v1/projects/nope/review", headers=headers).status_code == 404


def test_gold_set_is_frozen_and_only_grows(builder: Builder):
    assert builder.run(BUILD).success
    first_gold = {r["id"]: r for r in builder.split_rows("gold")}
    with builder.db.session() as session:
        before = {r.document_id: r.split for r in session.query(DocumentSplit)}
    for path in sample_files(["remote-work-policy.html", "expenses-and-travel-policy.docx"]):
        builder.add(path.name, path.read_bytes())
    assert builder.run(BUILD).success
    with builder.db.session() as session:
        after = {r.document_id: r.split for r in session.query(DocumentSplit)}
    assert {d: after[d] for d in before} == before
    assert len(after) == len(before) + 2
    second_gold = {r["id"]: r for r in builder.split_rows("gold")}
    # Every earlier gold example is still there, word for word.
    for key, row in first_gold.items():
        assert second_gold[key]["messages"] == row["messages"]
    assert _checks(builder.run(["splits"]))["no_gold_leak"] == (True, "ERROR")
