"""The project's own evaluation set over HTTP: replaced, read, validated with errors that name
the question, audited, and invisible to another tenant."""

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
def client(tmp_path, monkeypatch, postgres_url):
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    monkeypatch.setenv("PRIVATUNE_DATABASE_URL", postgres_url)
    from resources.settings import get_settings

    get_settings.cache_clear()
    with TestClient(create_app(orchestrator=UNREACHABLE)) as c:
        yield c


def _tenant(client: TestClient, slug: str) -> dict[str, str]:
    key = client.post("/v1/tenants", json={"slug": slug}, headers=OPERATOR).json()["api_key"]
    with Database().session() as session:
        tenant, _ = authenticate(session, key)
        TenantScope(session, tenant.id).create_project("handbook", "Handbook", {})
    return {"Authorization": f"Bearer {key}"}


def test_replace_read_validate_clear_and_isolation(client: TestClient) -> None:
    acme = _tenant(client, "acme")
    other = _tenant(client, "globex")
    upload = client.post(
        "/v1/projects/handbook/documents",
        files=[("f", ("leave.md", b"# Leave\n\nEmployees get 25 days of leave."))],
        headers=acme,
    )
    assert upload.status_code == 201
    url = "/v1/projects/handbook/evaluation-set"
    assert client.get(url, headers=acme).json() == {"questions": [], "answerable": 0, "refuse": 0}

    body = {
        "questions": [
            {
                "question": "How many days of leave do I get?",
                "answer": "25",
                "document": "leave.md",
            },
            {"q": "How long is the notice period?", "a": "one month"},  # gold-file keys
            {"question": "What is our revenue?", "expect": "refuse"},
        ]
    }
    saved = client.put(url, json=body, headers=acme)
    assert saved.status_code == 200, saved.text
    data = saved.json()
    assert (data["answerable"], data["refuse"]) == (2, 1)
    assert [q["expect"] for q in data["questions"]] == ["answer", "answer", "refuse"]
    assert data["questions"][1]["answer"] == "one month"
    assert client.get(url, headers=acme).json()["questions"] == data["questions"]

    bad = client.put(
        url,
        json={
            "questions": [{"question": "Where is it?", "answer": "x", "document": "missing.pdf"}]
        },
        headers=acme,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_evaluation_set"
    assert "questions[0]" in bad.json()["error"]["message"]
    # a refused replacement keeps what was stored
    assert len(client.get(url, headers=acme).json()["questions"]) == 3

    # another tenant neither sees nor touches it
    assert client.get(url, headers=other).json()["questions"] == []
    assert client.delete(url, headers=other).status_code == 204
    assert len(client.get(url, headers=acme).json()["questions"]) == 3

    assert client.delete(url, headers=acme).status_code == 204
    assert client.get(url, headers=acme).json()["questions"] == []
    with Database().session() as session:
        tenant, _ = authenticate(session, acme["Authorization"].split()[1])
        actions = [e.action for e in TenantScope(session, tenant.id).audit_events()]
    assert "evaluation_set.replaced" in actions and "evaluation_set.cleared" in actions
    assert client.get("/v1/projects/nope/evaluation-set", headers=acme).status_code == 404
