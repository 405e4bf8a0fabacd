"""HTTP semantics the contract test relies on, request by request, on PostgreSQL: bodies that
cannot be decoded or have the wrong types answer 400 invalid_request (never 500), 405 and OPTIONS
name every method of the path, values the database cannot hold are the client's error, and the
issue's hand checks (an upload without a key, tenant creation without the operator token)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from api.app import create_app
from resources.database import Database
from resources.orchestrator import DagsterOrchestrator
from resources.repository import TenantScope, authenticate
from tests.conftest import OPERATOR

UNREACHABLE = DagsterOrchestrator(url="http://127.0.0.1:9", timeout=2)


@pytest.fixture
def client(tmp_path, monkeypatch, postgres_url) -> Iterator[TestClient]:
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    monkeypatch.setenv("PRIVATUNE_DATABASE_URL", postgres_url)
    from resources.settings import get_settings

    get_settings.cache_clear()
    app = create_app(database=Database(url=postgres_url), orchestrator=UNREACHABLE)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def owner(client: TestClient, postgres_url: str) -> dict[str, str]:
    """The owner key of tenant acme, which has project handbook."""
    key = client.post("/v1/tenants", json={"slug": "acme"}, headers=OPERATOR).json()["api_key"]
    with Database(url=postgres_url).session() as session:
        found = authenticate(session, key)
        assert found is not None
        TenantScope(session, found[0].id).create_project("handbook", "Handbook", {})
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # deeper than the decoder follows
        b'{"slug": ' + b"[" * 990 + b"]" * 990 + b"}",  # as deep as the checks can follow
        b'{"slug": "a", "name": 1e999}',  # a number out of range
        b'{"slug": 1' + b"0" * 5000 + b"}",  # an integer of 5001 digits
        b'{"slug": "\xff\xfe"}',  # not UTF-8
        b'{"slug": "a"',  # cut off
        b"",  # nothing where a body is required
    ],
    ids=["nested-100000", "nested-990", "1e999", "5001-digits", "not-utf8", "truncated", "empty"],
)
def test_a_body_that_cannot_be_decoded_answers_400_invalid_request(client, owner, body):
    response = client.post(
        "/v1/projects", content=body, headers={**owner, "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_body_of_the_wrong_types_is_refused_as_the_document_says(client, owner):
    def create_key(extra: dict) -> int:
        body = {"name": "ci", "scopes": ["read"], **extra}
        return client.post("/v1/keys", json=body, headers=owner).status_code

    # Litestar alone would read "2" as 2 and 1 as true; the document says integer and boolean.
    assert create_key({"expires_in_days": "2"}) == 400
    refused = client.post(
        "/v1/admin/base-models",
        json={
            "id": "m",
            "name": "m",
            "source_kind": "hub",
            "source": "x/y",
            "licence": "MIT",
            "context_length": 2048,
            "enabled": 1,
        },
        headers=OPERATOR,
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["details"][0]["key"] == "enabled"
    # A number without a fraction is an integer, in JSON Schema and here.
    assert create_key({"expires_in_days": 2.0}) == 201


def test_405_and_options_name_every_method_of_the_path(client, owner):
    trace = client.request("TRACE", "/v1/usage", headers=owner)
    assert trace.status_code == 405 and trace.json()["error"]["code"] == "method_not_allowed"
    assert set(trace.headers["allow"].split(", ")) == {"GET", "OPTIONS"}
    delete = client.delete("/v1/projects", headers=owner)
    assert set(delete.headers["allow"].split(", ")) == {"GET", "OPTIONS", "POST"}
    # Litestar 2 answered OPTIONS with the methods of the first handler registered only.
    options = client.options("/v1/projects/handbook", headers=owner)
    assert options.status_code == 204
    assert set(options.headers["allow"].split(", ")) == {"GET", "OPTIONS", "PATCH"}
    options = client.options("/v1/projects/handbook/documents/x", headers=owner)
    assert set(options.headers["allow"].split(", ")) == {"DELETE", "GET", "OPTIONS"}


def test_an_upload_without_a_key_is_401_and_tenants_are_for_the_operator(client):
    upload = client.post("/v1/projects/handbook/documents", files=[("f", ("a.txt", b"text"))])
    assert upload.status_code == 401 and upload.json()["error"]["code"] == "missing_api_key"
    tenant = client.post("/v1/tenants", json={"slug": "anyone"})
    assert tenant.status_code == 401 and tenant.json()["error"]["code"] == "operator_required"


def test_values_postgresql_cannot_hold_are_the_clients_error(client, owner):
    # NUL characters: PostgreSQL text cannot hold them, and the driver refuses them.
    path = client.get("/v1/projects/hand%00book", headers=owner)
    assert path.status_code == 400 and path.json()["error"]["code"] == "invalid_request"
    query = client.get("/v1/audit", params={"actor": "a\x00b"}, headers=owner)
    assert query.status_code == 400
    body = client.put(
        "/v1/projects/handbook/data-rights", json={"confirmed_by": "Jo\x00Bloggs"}, headers=owner
    )
    assert body.status_code == 400
    assert not client.get("/v1/projects/handbook/data-rights", headers=owner).json()["confirmed"]
    # A number beyond its column (integer): 400 naming the reason, nothing stored.
    model = {
        "id": "huge",
        "name": "Huge",
        "source_kind": "hub",
        "source": "x/y",
        "licence": "MIT",
        "context_length": 2**40,
    }
    too_big = client.post("/v1/admin/base-models", json=model, headers=OPERATOR)
    assert too_big.status_code == 400, too_big.text
    assert "larger than this field holds" in too_big.json()["error"]["message"]
    models = client.get("/v1/admin/base-models", headers=OPERATOR).json()
    assert "huge" not in {m["id"] for m in models}


def test_a_session_id_the_server_never_issued_is_neither_kept_nor_echoed(client, owner):
    # "%ff" is read as U+FFFD, which no header can carry back: echoing it failed with a 500.
    for cookie in ("abc", "%ff%fe" * 32, "0" * 64 + "x"):
        response = client.get(
            "/v1/keys", headers={**owner, "cookie": f"privatune_session={cookie}"}
        )
        assert response.status_code == 200, response.text
        assert "set-cookie" not in response.headers


def test_a_stream_is_served_with_its_own_media_type(client, owner):
    export = client.get("/v1/audit", params={"format": "jsonl"}, headers=owner)
    assert export.status_code == 200
    assert export.headers["content-type"] == "application/x-ndjson"
    assert export.text.count("\n") >= 1  # tenant.created at least


def test_audit_times_are_rfc3339_date_times(client, owner):
    for value in ("0.5", "1700000000", "2026-01-31T09:00:00", "yesterday"):
        answer = client.get("/v1/audit", params={"until": value}, headers=owner)
        assert answer.status_code == 400, value
        assert answer.json()["error"]["code"] == "invalid_audit_query"
    ok = client.get("/v1/audit", params={"until": "2099-01-31T09:00:00Z"}, headers=owner)
    assert ok.status_code == 200 and ok.json()["items"]
