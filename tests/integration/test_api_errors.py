"""API error paths that need no Dagster: clear JSON errors, stable codes, nothing lost."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from api.app import create_app
from resources.database import Database
from resources.orchestrator import DagsterOrchestrator
from resources.repository import TenantScope, authenticate
from tests.conftest import OPERATOR

UNREACHABLE = DagsterOrchestrator(url="http://127.0.0.1:9", timeout=2)


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    monkeypatch.setenv("PRIVATUNE_MAX_UPLOAD_BYTES", "1000")
    from resources.settings import get_settings

    get_settings.cache_clear()
    with TestClient(create_app(orchestrator=UNREACHABLE)) as c:
        yield c


def _tenant_with_project(client: TestClient) -> dict[str, str]:
    key = client.post("/v1/tenants", json={"slug": "acme"}, headers=OPERATOR).json()["api_key"]
    with Database().session() as session:
        tenant, _ = authenticate(session, key)
        TenantScope(session, tenant.id).create_project("handbook", "Handbook", {})
    return {"Authorization": f"Bearer {key}"}


def test_project_creation_needs_dagster_and_stores_nothing_without_it(client):
    key = client.post("/v1/tenants", json={"slug": "acme"}, headers=OPERATOR).json()["api_key"]
    headers = {"Authorization": f"Bearer {key}"}
    response = client.post("/v1/projects", json={"slug": "handbook"}, headers=headers)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "orchestrator_unavailable"
    assert client.get("/v1/projects", headers=headers).json() == []


def test_upload_limits_and_run_failure_keep_what_is_stored(client):
    headers = _tenant_with_project(client)
    ok = client.post(
        "/v1/projects/handbook/documents", files=[("f", ("a.txt", b"small file"))], headers=headers
    )
    assert ok.status_code == 201
    big = client.post(
        "/v1/projects/handbook/documents", files=[("f", ("big.txt", b"x" * 5000))], headers=headers
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "file_too_large"
    assert "limit" in big.json()["error"]["message"]
    docs = client.get("/v1/projects/handbook/documents", headers=headers).json()
    assert [d["filename"] for d in docs] == ["a.txt"]

    rights = client.put(
        "/v1/projects/handbook/data-rights", json={"confirmed_by": "Jo Bloggs"}, headers=headers
    )
    assert rights.status_code == 200, rights.text
    run = client.post("/v1/projects/handbook/runs", json={"train_steps": 1}, headers=headers)
    assert run.status_code == 503 and run.json()["error"]["code"] == "orchestrator_unavailable"
    runs = client.get("/v1/projects/handbook/runs", headers=headers).json()
    assert runs[0]["status"] == "failed" and "unreachable" in runs[0]["error"]
    bad = client.post("/v1/projects/handbook/runs", json={"train_steps": 0}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_run_config"


def test_validation_and_unknown_resources(client):
    headers = _tenant_with_project(client)
    invalid = client.post("/v1/projects", json={"name": 3}, headers=headers)
    assert invalid.status_code == 400 and invalid.json()["error"]["code"] == "invalid_request"
    assert (
        client.get("/v1/projects/nope", headers=headers).json()["error"]["code"]
        == "project_not_found"
    )
    missing = client.get("/v1/projects/handbook/documents/abc", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "document_not_found"
    chat = client.post(
        "/v1/chat/completions",
        json={"model": "acme/handbook", "messages": [{"role": "user", "content": "hi"}]},
        headers=headers,
    )
    assert chat.status_code == 404 and chat.json()["error"]["code"] == "no_deployment"
    stream = client.post(
        "/v1/chat/completions",
        json={
            "model": "acme/handbook",
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        headers=headers,
    )
    # a streamed request is refused the same way, as JSON, before any event is sent
    assert stream.status_code == 404 and stream.json()["error"]["code"] == "no_deployment"


def test_tenant_creation_is_for_operators_unless_open_signup(client, monkeypatch):
    from resources.settings import get_settings

    monkeypatch.setenv("PRIVATUNE_ADMIN_TOKEN", "s3cret-operator-token")
    get_settings.cache_clear()
    denied = client.post("/v1/tenants", json={"slug": "acme"})
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "operator_required"
    wrong = client.post(
        "/v1/tenants", json={"slug": "acme"}, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401
    allowed = client.post(
        "/v1/tenants",
        json={"slug": "acme"},
        headers={"Authorization": "Bearer s3cret-operator-token"},
    )
    assert allowed.status_code == 201 and allowed.json()["api_key"].startswith("ptk_")
    # A tenant's own key (even its owner key) is not the operator.
    tenant_key = {"Authorization": f"Bearer {allowed.json()['api_key']}"}
    as_tenant = client.post("/v1/tenants", json={"slug": "globex"}, headers=tenant_key)
    assert as_tenant.status_code == 403
    assert as_tenant.json()["error"]["code"] == "operator_required"

    monkeypatch.setenv("PRIVATUNE_OPEN_SIGNUP", "1")
    get_settings.cache_clear()
    opened = client.post("/v1/tenants", json={"slug": "initech"})
    assert opened.status_code == 201, opened.text
    # anyone may create a tenant, but only an operator chooses its plan
    chosen = client.post("/v1/tenants", json={"slug": "hooli", "plan": "enterprise"})
    assert chosen.status_code == 400
