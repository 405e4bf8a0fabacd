"""The retrieval_index asset materialised through Dagster against PostgreSQL and a real S3
server: a first build embeds every chunk, the next dataset version with one more chunk embeds
only that one, an unchanged one embeds nothing, and serving's `load_index` reads the result."""

from __future__ import annotations

import uuid

import dagster as dg
import numpy as np
import pytest

from assets.dataset.export import to_jsonl
from assets.retrieval.hybrid import (
    CONFIDENCE_THRESHOLD,
    LATEST_KEY,
    latest_index_key,
    load_index,
    read_index,
)
from pipelines.definitions import all_assets, all_checks
from resources.antivirus import Antivirus
from resources.database import Database
from resources.io_manager import ObjectStoreManifestIOManager
from resources.model_runtime import ModelRuntime
from resources.object_store import ObjectStoreResource
from resources.repository import TenantScope, create_tenant
from resources.tables import RunEvent
from tests.unit.test_hybrid_retrieval import demo_chunks

PARTITION = "acme__handbook"


class Project:
    def __init__(self, db: Database, store: ObjectStoreResource) -> None:
        self.db, self.store = db, store
        with db.session() as session:
            tenant, _ = create_tenant(session, "acme", "Acme")
            TenantScope(session, tenant.id).create_project("handbook", "Handbook", {})
        self.pstore = store.project("acme", "handbook")
        self.instance = dg.DagsterInstance.ephemeral()
        self.instance.add_dynamic_partitions("tenant_project", [PARTITION])

    def publish(self, version: str, chunks: list[dict]) -> None:
        """What `splits` leaves behind: the chunks and its manifest (the asset's input)."""
        key = f"datasets/generations/{version}/chunks.jsonl"
        self.pstore.put_bytes(key, to_jsonl(chunks))
        self.pstore.put_json(
            "manifests/splits.json",
            {"dataset_version": version, "generation": version, "chunks_key": key, "splits": {}},
        )

    def build(self) -> tuple[dict, dict]:
        result = dg.materialize(
            [*all_assets, *all_checks],
            selection=["retrieval_index"],
            partition_key=PARTITION,
            instance=self.instance,
            resources={
                "db": self.db,
                "store": self.store,
                "runtime": ModelRuntime(),
                "antivirus": Antivirus(),
                "io_manager": ObjectStoreManifestIOManager(store=self.store),
            },
        )
        assert result.success
        [materialization] = result.asset_materializations_for_node("retrieval_index")
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        return self.pstore.get_json("manifests/retrieval_index.json"), metadata


@pytest.fixture
def project(make_postgres_db, s3_server) -> Project:
    db = Database(url=make_postgres_db()[1])
    db.migrate()
    store = ObjectStoreResource(
        backend="s3",
        endpoint=s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        bucket=f"t-{uuid.uuid4().hex[:16]}",
        secure=False,
    )
    return Project(db, store)


def test_incremental_index_builds(project: Project) -> None:
    chunks = demo_chunks(["workplace-faq.md", "remote-work-policy.html", "benefits-summary.txt"])
    assert len(chunks) > 10
    first_chunks, added = chunks[:-1], chunks[-1]

    # 1. the first index embeds every chunk
    project.publish("v1", first_chunks)
    first, metadata = project.build()
    n = len(first_chunks)
    assert first["chunks"] == n
    assert (first["embedded"], first["reused"]) == (n, 0)
    assert first["index_key"] == f"indexes/{first['index_version']}/manifest.json"
    assert first["dataset_version"] == "v1"
    assert first["confidence_threshold"] == CONFIDENCE_THRESHOLD
    assert (metadata["chunks"], metadata["embedded"], metadata["reused"]) == (n, n, 0)
    assert metadata["seconds"] > 0
    assert metadata["index_version"] == first["index_version"]
    assert latest_index_key(project.pstore) == first["index_key"]
    manifest = project.pstore.get_json(first["index_key"])
    assert manifest["dataset_version"] == "v1"
    assert manifest["chunks_key"] == "datasets/generations/v1/chunks.jsonl"

    # serving's side: the index loads from its key and answers with provenance
    index = load_index(project.pstore, first["index_key"])
    hits = index.retrieve("Can I bring my dog to the office?", k=3)
    assert hits[0].chunk["filename"] == "workplace-faq.md"
    assert index.is_confident(hits)
    citation = hits[0].citation()
    assert {"document_id", "chunk_id", "page", "start", "end", "lexical", "dense"} <= set(citation)
    assert not index.is_confident("Which stocks should I buy this year?")

    # 2. the next dataset version has one chunk more: only that one is embedded
    project.publish("v2", [*first_chunks, added])
    second, metadata = project.build()
    assert second["index_version"] != first["index_version"]
    assert (second["chunks"], second["embedded"], second["reused"]) == (n + 1, 1, n)
    assert (metadata["embedded"], metadata["reused"]) == (1, n)
    assert metadata["previous_index"] == first["index_key"]
    assert project.pstore.get_json(LATEST_KEY)["index_version"] == second["index_version"]
    old = read_index(project.pstore, first["index_key"])  # earlier versions stay readable
    new = read_index(project.pstore, second["index_key"])
    assert np.array_equal(new.embeddings[:n], old.embeddings)

    # 3. the same chunks again: the same version, nothing embedded
    project.publish("v3", [*first_chunks, added])
    third, _ = project.build()
    assert third["index_version"] == second["index_version"]
    assert (third["embedded"], third["reused"]) == (0, n + 1)
    assert project.pstore.get_json(second["index_key"])["embedded"] == 1

    # each build is a stage of the run's timeline
    with project.db.session() as session:
        finished = [
            e.data
            for e in session.query(RunEvent)
            .filter(RunEvent.kind == "stage_finished", RunEvent.stage == "retrieval_index")
            .order_by(RunEvent.at)
        ]
    assert [(e["embedded"], e["reused"]) for e in finished] == [(n, 0), (1, n), (0, n + 1)]
