from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from resources.database import Database, _engines
from resources.repository import (
    API_KEY_PREFIX,
    TenantScope,
    authenticate,
    create_tenant,
    hash_api_key,
    partition_key,
    split_partition_key,
    tenant_by_slug,
)
from resources.tables import ApiKey, Deployment, utcnow


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path}/t.db"
    database = Database(url=url)
    database.migrate()
    yield database
    engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()


def _document_fields(sha: str = "a" * 64, filename: str = "handbook.pdf") -> dict:
    return {
        "filename": filename,
        "sha256": sha,
        "size_bytes": 1234,
        "object_key": f"raw/{sha}",
    }


def _deployment_fields(n: int = 0) -> dict:
    return {
        "base_model": "SmolLM2-135M-Instruct",
        "adapter_key": f"adapters/{n}",
        "dataset_version": f"ds-{n}",
        "manifest_key": f"manifests/{n}.json",
    }


# --- keys -------------------------------------------------------------------


def test_create_tenant_returns_a_key_that_authenticates(db: Database) -> None:
    with db.session() as s:
        tenant, key = create_tenant(s, "acme", "Acme Robotics")
        tenant_id = tenant.id
    assert key.startswith(API_KEY_PREFIX)
    assert len(key) > 40
    with db.session() as s:
        found = authenticate(s, key)
        assert found is not None
        found_tenant, api_key = found
        assert found_tenant.id == tenant_id
        assert found_tenant.slug == "acme"
        assert api_key.name == "default"
        assert api_key.last_used_at is not None
        assert tenant_by_slug(s, "acme").id == tenant_id
        assert tenant_by_slug(s, "nobody") is None


def test_each_key_belongs_to_its_own_tenant(db: Database) -> None:
    with db.session() as s:
        a, key_a = create_tenant(s, "acme", "Acme")
        b, key_b = create_tenant(s, "beta", "Beta")
        extra = TenantScope(s, a.id).create_api_key("ci")[0]
        ids = (a.id, b.id)
    assert len({key_a, key_b, extra}) == 3
    with db.session() as s:
        assert authenticate(s, key_a)[0].id == ids[0]
        assert authenticate(s, extra)[0].id == ids[0]
        assert authenticate(s, extra)[1].name == "ci"
        assert authenticate(s, key_b)[0].id == ids[1]


@pytest.mark.parametrize(
    "wrong",
    [
        "",
        "ptk_",
        "ptk_not-the-key",
        "not-even-prefixed",
        "Bearer ptk_x",
    ],
)
def test_wrong_keys_are_rejected(db: Database, wrong: str) -> None:
    with db.session() as s:
        create_tenant(s, "acme", "Acme")
    with db.session() as s:
        assert authenticate(s, wrong) is None


def test_a_changed_key_is_rejected(db: Database) -> None:
    with db.session() as s:
        _, key = create_tenant(s, "acme", "Acme")
    with db.session() as s:
        assert authenticate(s, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert authenticate(s, key + "x") is None
        assert authenticate(s, key.upper()) is None


def test_revoked_key_is_rejected_and_others_still_work(db: Database) -> None:
    with db.session() as s:
        tenant, key = create_tenant(s, "acme", "Acme")
        second = TenantScope(s, tenant.id).create_api_key("second")[0]
    with db.session() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_api_key(key)))
        row.revoked_at = utcnow()
    with db.session() as s:
        assert authenticate(s, key) is None
        assert authenticate(s, second) is not None


def test_keys_are_stored_hashed(db: Database) -> None:
    with db.session() as s:
        _, key = create_tenant(s, "acme", "Acme")
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM api_keys")).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    assert row["key_hash"] == hash_api_key(key)
    assert row["key_hash"] != key
    assert row["prefix"] == key[:12]
    for value in row.values():
        assert key not in str(value)
        assert key[len(API_KEY_PREFIX) :] not in str(value)
    # Nor anywhere else in the database file's tables.
    with db.engine.connect() as conn:
        tables = [
            r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
        ]
        for table in tables:
            for r in conn.execute(text(f'SELECT * FROM "{table}"')):
                assert all(key not in str(v) for v in r)


def test_hash_is_sha256_hex() -> None:
    digest = hash_api_key("ptk_abc")
    assert len(digest) == 64
    assert digest == hash_api_key("ptk_abc")
    assert digest != hash_api_key("ptk_abd")


# --- tenant isolation -------------------------------------------------------


def _two_tenants(s) -> tuple[TenantScope, TenantScope]:  # type: ignore[no-untyped-def]
    a, _ = create_tenant(s, "acme", "Acme")
    b, _ = create_tenant(s, "beta", "Beta")
    return TenantScope(s, a.id), TenantScope(s, b.id)


def test_tenant_scope_isolation(db: Database) -> None:
    with db.session() as s:
        scope_a, scope_b = _two_tenants(s)
        project_a = scope_a.create_project("handbook", "Handbook", {"seed": 1})
        doc_a = scope_a.add_document(project_a.id, **_document_fields())
        run_a = scope_a.add_run(project_a.id, "pipeline", {"steps": 3})
        run_a.dagster_run_id = "dagster-run-a"
        scope_a.add_run_event(run_a.id, "stage", "started", stage="ingest", data={"n": 1})
        dep_a = scope_a.add_deployment(project_a.id, **_deployment_fields())
        scope_a.activate(dep_a)
        scope_a.audit("alice", "project.create", "handbook")
        s.flush()

        # Tenant A sees its own rows.
        assert [p.id for p in scope_a.projects()] == [project_a.id]
        assert scope_a.project("handbook").id == project_a.id
        assert scope_a.document(doc_a.id).id == doc_a.id
        assert [d.id for d in scope_a.documents(project_a.id)] == [doc_a.id]
        assert scope_a.document_by_sha256(project_a.id, "a" * 64).id == doc_a.id
        assert scope_a.run(run_a.id).id == run_a.id
        assert scope_a.run_by_dagster_id("dagster-run-a").id == run_a.id
        assert [r.id for r in scope_a.runs(project_a.id)] == [run_a.id]
        assert len(scope_a.run_events(run_a.id)) == 1
        assert [d.id for d in scope_a.deployments(project_a.id)] == [dep_a.id]
        assert scope_a.deployment(project_a.id, 1).id == dep_a.id
        assert scope_a.active_deployment(project_a.id).id == dep_a.id
        assert [e.action for e in scope_a.audit_events()] == ["project.create"]

        # Tenant B sees none of them, even with A's ids.
        assert scope_b.projects() == []
        assert scope_b.project("handbook") is None
        assert scope_b.document(doc_a.id) is None
        assert scope_b.documents(project_a.id) == []
        assert scope_b.documents(project_a.id, statuses=["uploaded"]) == []
        assert scope_b.document_by_sha256(project_a.id, "a" * 64) is None
        assert scope_b.run(run_a.id) is None
        assert scope_b.run_by_dagster_id("dagster-run-a") is None
        assert scope_b.runs(project_a.id) == []
        assert scope_b.run_events(run_a.id) == []
        assert scope_b.deployments(project_a.id) == []
        assert scope_b.deployment(project_a.id, 1) is None
        assert scope_b.active_deployment(project_a.id) is None
        assert scope_b.audit_events() == []
        with pytest.raises(PermissionError):
            scope_b.activate(dep_a)
        assert dep_a.status == "active"


def test_same_project_slug_in_two_tenants(db: Database) -> None:
    with db.session() as s:
        scope_a, scope_b = _two_tenants(s)
        project_a = scope_a.create_project("handbook", "A's", {})
        project_b = scope_b.create_project("handbook", "B's", {})
        assert project_a.id != project_b.id
        assert scope_a.project("handbook").name == "A's"
        assert scope_b.project("handbook").name == "B's"
        # Same file in both tenants is fine: uniqueness is per project.
        scope_a.add_document(project_a.id, **_document_fields())
        scope_b.add_document(project_b.id, **_document_fields())
        # Deployment versions are numbered per project.
        assert scope_a.add_deployment(project_a.id, **_deployment_fields()).version == 1
        assert scope_b.add_deployment(project_b.id, **_deployment_fields()).version == 1


def test_project_slug_is_unique_per_tenant(db: Database) -> None:
    with pytest.raises(IntegrityError), db.session() as s:
        scope_a, _ = _two_tenants(s)
        scope_a.create_project("handbook", "One", {})
        scope_a.create_project("handbook", "Two", {})


def test_documents_are_unique_per_project_and_sha256(db: Database) -> None:
    with db.session() as s:
        scope_a, _ = _two_tenants(s)
        project = scope_a.create_project("handbook", "Handbook", {})
        other = scope_a.create_project("other", "Other", {})
        scope_a.add_document(project.id, **_document_fields("a" * 64))
        scope_a.add_document(project.id, **_document_fields("b" * 64))
        scope_a.add_document(other.id, **_document_fields("a" * 64))
        ids = (project.id,)
    with pytest.raises(IntegrityError), db.session() as s:
        tenant = tenant_by_slug(s, "acme")
        TenantScope(s, tenant.id).add_document(
            ids[0], **_document_fields("a" * 64, filename="copy.pdf")
        )
    with db.session() as s:
        tenant = tenant_by_slug(s, "acme")
        docs = TenantScope(s, tenant.id).documents(ids[0])
        assert sorted(d.sha256 for d in docs) == ["a" * 64, "b" * 64]


def test_documents_filter_by_status(db: Database) -> None:
    with db.session() as s:
        scope, _ = _two_tenants(s)
        project = scope.create_project("handbook", "Handbook", {})
        ready = scope.add_document(project.id, status="ready", **_document_fields("a" * 64))
        failed = scope.add_document(project.id, status="failed", **_document_fields("b" * 64))
        assert [d.id for d in scope.documents(project.id, ["ready"])] == [ready.id]
        assert {d.id for d in scope.documents(project.id, ["ready", "failed"])} == {
            ready.id,
            failed.id,
        }
        assert len(scope.documents(project.id)) == 2


def test_deployment_versions_increment_per_project(db: Database) -> None:
    with db.session() as s:
        scope, _ = _two_tenants(s)
        one = scope.create_project("one", "One", {})
        two = scope.create_project("two", "Two", {})
        versions_one = [
            scope.add_deployment(one.id, **_deployment_fields(i)).version for i in range(3)
        ]
        versions_two = [
            scope.add_deployment(two.id, **_deployment_fields(i)).version for i in range(2)
        ]
        assert versions_one == [1, 2, 3]
        assert versions_two == [1, 2]
        assert [d.version for d in scope.deployments(one.id)] == [3, 2, 1]
        assert scope.deployment(one.id, 2).adapter_key == "adapters/1"
        assert scope.deployment(one.id, 4) is None
        # New deployments are inactive until activated.
        assert {d.status for d in scope.deployments(one.id)} == {"inactive"}
        assert scope.active_deployment(one.id) is None


def test_activate_leaves_exactly_one_active_deployment(db: Database) -> None:
    with db.session() as s:
        scope, _ = _two_tenants(s)
        project = scope.create_project("one", "One", {})
        other = scope.create_project("two", "Two", {})
        deps = [scope.add_deployment(project.id, **_deployment_fields(i)) for i in range(3)]
        other_dep = scope.add_deployment(other.id, **_deployment_fields())
        scope.activate(other_dep)
        project_id, other_id = project.id, other.id
        dep_ids = [d.id for d in deps]

    for target in [0, 2, 1, 1]:
        with db.session() as s:
            tenant = tenant_by_slug(s, "acme")
            scope = TenantScope(s, tenant.id)
            deployment = s.get(Deployment, dep_ids[target])
            scope.activate(deployment)
        with db.session() as s:
            tenant = tenant_by_slug(s, "acme")
            scope = TenantScope(s, tenant.id)
            statuses = {d.id: d.status for d in scope.deployments(project_id)}
            assert [i for i, st in statuses.items() if st == "active"] == [dep_ids[target]]
            assert scope.active_deployment(project_id).id == dep_ids[target]
            assert scope.active_deployment(project_id).activated_at is not None
            # Activation in one project does not touch another project's deployment.
            assert scope.active_deployment(other_id).id == other_dep.id


def test_runs_are_listed_newest_first_and_limited(db: Database) -> None:
    with db.session() as s:
        scope, _ = _two_tenants(s)
        project = scope.create_project("one", "One", {})
        runs = [scope.add_run(project.id, "pipeline", {"i": i}) for i in range(4)]
        listed = scope.runs(project.id)
        assert len(listed) == 4
        assert [r.created_at for r in listed] == sorted(
            (r.created_at for r in listed), reverse=True
        )
        assert len(scope.runs(project.id, limit=2)) == 2
        assert runs[0].status == "queued"
        assert scope.run(runs[2].id).config == {"i": 2}


def test_audit_events_newest_first(db: Database) -> None:
    with db.session() as s:
        scope, _ = _two_tenants(s)
        for action in ["one", "two", "three"]:
            scope.audit("alice", action, data={"a": action})
        events = scope.audit_events()
        assert [e.action for e in events] == ["three", "two", "one"]
        assert events[0].data == {"a": "three"}
        assert [e.action for e in scope.audit_events(limit=1)] == ["three"]


def test_session_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        create_tenant(s, "acme", "Acme")
        raise RuntimeError("boom")
    with db.session() as s:
        assert tenant_by_slug(s, "acme") is None


# --- partition keys ---------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "project"),
    [("acme", "handbook"), ("a", "b"), ("acme-robotics", "hr-2024"), ("t1", "p-9")],
)
def test_partition_key_round_trip(tenant: str, project: str) -> None:
    key = partition_key(tenant, project)
    assert key == f"{tenant}__{project}"
    assert split_partition_key(key) == (tenant, project)


@pytest.mark.parametrize("bad", ["", "acme", "acme_handbook", "__handbook", "acme__", "__"])
def test_bad_partition_keys_raise(bad: str) -> None:
    with pytest.raises(ValueError, match="partition key"):
        split_partition_key(bad)


def test_scope_refuses_writes_into_another_tenants_project(tmp_path) -> None:
    from resources.database import Database
    from resources.repository import TenantScope, create_tenant

    db = Database(url=f"sqlite:///{tmp_path}/own.db")
    db.migrate()
    with db.session() as session:
        a, _ = create_tenant(session, "aaa", "A")
        b, _ = create_tenant(session, "bbb", "B")
        project_a = TenantScope(session, a.id).create_project("p", "p", {})
        run_a = TenantScope(session, a.id).add_run(project_a.id, "pipeline", {})
        scope_b = TenantScope(session, b.id)
        with pytest.raises(PermissionError):
            scope_b.add_document(
                project_a.id, filename="x", sha256="0" * 64, size_bytes=1, object_key="k", meta={}
            )
        with pytest.raises(PermissionError):
            scope_b.add_run(project_a.id, "pipeline", {})
        with pytest.raises(PermissionError):
            scope_b.add_deployment(
                project_a.id, base_model="m", adapter_key="k", dataset_version="v", manifest_key=""
            )
        with pytest.raises(PermissionError):
            scope_b.add_run_event(run_a.id, "status", "x")


def _example_row(key: str, split: str = "train", score: float = 0.9) -> dict:
    return {
        "key": key,
        "document_id": "doc-1",
        "split": split,
        "kind": "fact",
        "generator": "deterministic-v1",
        "question": f"Question {key}?",
        "answer": "An answer.",
        "messages": [{"role": "assistant", "content": "An answer."}],
        "citations": ["c1"],
        "context": ["c1"],
        "scores": {"overall": score},
        "score": score,
        "status": "pending" if score < 0.6 else "auto_accepted",
    }


def test_dataset_rows_are_tenant_scoped_and_reviews_carry_over(db: Database) -> None:
    with db.session() as session:
        a, _ = create_tenant(session, "acme", "Acme")
        b, _ = create_tenant(session, "globex", "Globex")
        scope_a, scope_b = TenantScope(session, a.id), TenantScope(session, b.id)
        project_a = scope_a.create_project("handbook", "Handbook", {})
        project_b = scope_b.create_project("handbook", "Handbook", {})
        scope_a.replace_examples(
            project_a.id, "gen-1", [_example_row("k1", score=0.3), _example_row("k2")]
        )
        assert scope_a.freeze_document_splits(project_a.id, {"doc-1": "train"}) == 1
        assert scope_a.freeze_document_splits(project_a.id, {"doc-1": "gold", "doc-2": "gold"}) == 1
        assert scope_a.document_splits(project_a.id) == {"doc-1": "train", "doc-2": "gold"}
        scope_a.save_dataset_version(project_a.id, "v1", "gen-1", manifest_key="m", manifest={})
        row = scope_a.examples(project_a.id, "gen-1", status="pending")[0]
        scope_a.review_example(row, "rejected", "ana")

        # Another tenant reads none of it, even naming A's project id or example id.
        assert scope_b.latest_generation(project_a.id) is None
        assert scope_b.examples(project_a.id, "gen-1") == []
        assert scope_b.example(project_a.id, row.id) is None
        assert scope_b.dataset_versions(project_a.id) == []
        assert scope_b.latest_reviews(project_a.id) == {}
        assert scope_b.document_splits(project_a.id) == {}
        with pytest.raises(PermissionError):
            scope_b.replace_examples(project_a.id, "gen-1", [])
        with pytest.raises(PermissionError):
            scope_b.review_example(row, "approved", "mallory")
        with pytest.raises(PermissionError):
            scope_b.freeze_document_splits(project_a.id, {"doc-9": "gold"})
        assert scope_b.latest_generation(project_b.id) is None

        assert scope_a.latest_generation(project_a.id) == "gen-1"
        assert scope_a.count_examples(project_a.id, "gen-1", status="rejected") == 1
        assert scope_a.count_examples(project_a.id, "gen-1", min_score=0.5) == 1
        assert scope_a.latest_reviews(project_a.id)["k1"].decision == "rejected"
        assert row.reviewed_by == "ana" and row.reviewed_at is not None
