"""What must hold before a training run starts: the tenant's data-rights confirmation, an
approved base model, valid hyperparameters and a dataset. Each refusal is a clear 4xx with a
stable code, audited, and stores no run. Dagster is unreachable here on purpose: every check
comes before the launch."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from api.app import create_app
from resources.database import Database
from resources.orchestrator import DagsterOrchestrator
from resources.repository import TenantScope, authenticate
from resources.tables import Tenant

UNREACHABLE = DagsterOrchestrator(url="http://127.0.0.1:9", timeout=2)
ADMIN = "admin-secret"


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    monkeypatch.setenv("PRIVATUNE_ADMIN_TOKEN", ADMIN)
    from resources.settings import get_settings

    get_settings.cache_clear()
    with TestClient(create_app(orchestrator=UNREACHABLE)) as c:
        yield c


def _tenant(client: TestClient, slug: str) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    key = client.post("/v1/tenants", json={"slug": slug}, headers=admin).json()["api_key"]
    with Database().session() as session:
        tenant, _ = authenticate(session, key)
        TenantScope(session, tenant.id).create_project("handbook", "Handbook", {})
    headers = {"Authorization": f"Bearer {key}"}
    upload = client.post(
        "/v1/projects/handbook/documents",
        files=[("f", ("a.txt", b"Annual leave is 25 days."))],
        headers=headers,
    )
    assert upload.status_code == 201
    return headers


def _codes(client: TestClient, headers: dict, body: dict) -> tuple[int, str]:
    response = client.post("/v1/projects/handbook/runs", json=body, headers=headers)
    return response.status_code, response.json().get("error", {}).get("code", "")


def _audit(slug: str) -> list:
    with Database().session() as session:
        tenant = session.query(Tenant).filter_by(slug=slug).one()
        return list(TenantScope(session, tenant.id).audit_events())


def test_runs_need_a_data_rights_confirmation_first(client):
    a = _tenant(client, "acme")
    status, code = _codes(client, a, {"kind": "training"})
    assert (status, code) == (403, "data_rights_not_confirmed")
    assert client.get("/v1/projects/handbook/runs", headers=a).json() == []
    refused = [e for e in _audit("acme") if e.action == "run.refused"]
    assert refused and refused[0].data["code"] == "data_rights_not_confirmed"
    assert client.get("/v1/projects/handbook/data-rights", headers=a).json()["confirmed"] is False

    blank = client.put("/v1/projects/handbook/data-rights", json={"confirmed_by": " "}, headers=a)
    assert blank.status_code == 400 and blank.json()["error"]["code"] == "invalid_data_rights"
    confirmed = client.put(
        "/v1/projects/handbook/data-rights",
        json={"confirmed_by": "Jo Bloggs, DPO", "statement": "We own the handbook."},
        headers=a,
    ).json()
    assert confirmed["confirmed"] is True and confirmed["confirmed_by"] == "Jo Bloggs, DPO"
    assert confirmed["confirmed_at"]
    assert any(e.action == "data_rights.confirmed" for e in _audit("acme"))
    # past the rights check, a training run still needs a dataset version
    assert _codes(client, a, {"kind": "training"}) == (409, "no_dataset")
    # another tenant's confirmation is its own
    b = _tenant(client, "globex")
    assert client.get("/v1/projects/handbook/data-rights", headers=b).json()["confirmed"] is False


def test_base_models_are_approved_per_tenant_and_plan(client):
    a = _tenant(client, "acme")
    b = _tenant(client, "globex")
    for h in (a, b):
        client.put("/v1/projects/handbook/data-rights", json={"confirmed_by": "Jo"}, headers=h)
    listed = client.get("/v1/base-models", headers=a).json()
    assert [m["id"] for m in listed] == ["HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert listed[0]["is_default"] and listed[0]["licence"] == "Apache-2.0"

    entry = {
        "id": "acme/private-7b",
        "name": "Private 7B",
        "source_kind": "local",
        "source": "/models/private-7b",
        "licence": "proprietary",
        "context_length": 4096,
        "allowed_tenants": ["acme"],
    }
    # no credentials: 401; a tenant's key (even its owner key) is not the operator: 403
    assert client.post("/v1/admin/base-models", json=entry).status_code == 401
    assert client.post("/v1/admin/base-models", json=entry, headers=a).status_code == 403
    admin = {"Authorization": f"Bearer {ADMIN}"}
    made = client.post("/v1/admin/base-models", json=entry, headers=admin)
    assert made.status_code == 201, made.text
    bad = client.post("/v1/admin/base-models", json={**entry, "source_kind": "ftp"}, headers=admin)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_base_model"

    assert "acme/private-7b" in [m["id"] for m in client.get("/v1/base-models", headers=a).json()]
    assert "acme/private-7b" not in [
        m["id"] for m in client.get("/v1/base-models", headers=b).json()
    ]
    # globex may not train on acme's model; nobody may train on an unknown one
    status, code = _codes(client, b, {"kind": "pipeline", "base_model": "acme/private-7b"})
    assert (status, code) == (403, "model_not_approved")
    assert _codes(client, a, {"base_model": "nope/unknown"}) == (403, "model_not_approved")
    # a plan restriction
    client.post(
        "/v1/admin/base-models",
        json={
            **entry,
            "id": "enterprise-only",
            "allowed_tenants": [],
            "allowed_plans": ["enterprise"],
        },
        headers=admin,
    )
    refused = client.post(
        "/v1/projects/handbook/runs", json={"base_model": "enterprise-only"}, headers=a
    ).json()["error"]
    assert refused["code"] == "model_not_approved" and "enterprise" in refused["message"]
    # acme's own model passes the checks and reaches the (unreachable) orchestrator
    status, code = _codes(client, a, {"kind": "pipeline", "base_model": "acme/private-7b"})
    assert (status, code) == (503, "orchestrator_unavailable")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"kind": "finetune"}, "kind must be one of"),
        ({"hyperparameters": {"rank": 0}}, "rank"),
        ({"hyperparameters": {"learning_rate": -1}}, "learning_rate"),
        ({"hyperparameters": {"target_modules": ["q_proj", "lm_head"]}}, "unknown: lm_head"),
        ({"hyperparameters": {"warp_speed": 9}}, "unknown hyperparameter(s): warp_speed"),
        ({"hyperparameters": {"device": "tpu"}}, "device"),
        ({"kind": "training", "eval_max_questions": 3}, "pipeline runs"),
    ],
)
def test_bad_hyperparameters_are_refused_with_the_field(client, body, fragment):
    a = _tenant(client, "acme")
    response = client.post("/v1/projects/handbook/runs", json=body, headers=a)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_run_config" and fragment in error["message"]
    assert client.get("/v1/projects/handbook/runs", headers=a).json() == []


def test_retry_only_failed_or_cancelled_runs(client):
    a = _tenant(client, "acme")
    client.put("/v1/projects/handbook/data-rights", json={"confirmed_by": "Jo"}, headers=a)
    assert _codes(client, a, {"train_steps": 1}) == (503, "orchestrator_unavailable")
    run = client.get("/v1/projects/handbook/runs", headers=a).json()[0]
    assert run["status"] == "failed"
    again = client.post(f"/v1/projects/handbook/runs/{run['id']}/retry", headers=a)
    # retried: queued again, then the launch fails the same way
    assert again.status_code == 503
    events = client.get(f"/v1/projects/handbook/runs/{run['id']}", headers=a).json()["events"]
    assert [
        e["data"].get("to") for e in events if e["kind"] == "status" and e["data"].get("to")
    ] == [
        "failed",
        "queued",
        "failed",
    ]
    assert any(e.action == "run.retried" for e in _audit("acme"))
    missing = client.post("/v1/projects/handbook/runs/nope/retry", headers=a)
    assert missing.status_code == 404
