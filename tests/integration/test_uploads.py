"""Uploads through the API: ZIP archives (and zip bombs), quotas, document detail and delete."""

from __future__ import annotations

import io
import zipfile

import pytest
from litestar.testing import TestClient

from api.app import create_app
from resources.database import Database
from resources.orchestrator import DagsterOrchestrator
from resources.repository import TenantScope, authenticate
from resources.settings import get_settings
from tests.conftest import OPERATOR, sample_files


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    get_settings.cache_clear()
    with TestClient(create_app(orchestrator=DagsterOrchestrator(url="http://127.0.0.1:9"))) as c:
        # The plan's storage limit, as an operator sets it.
        limited = c.patch(
            "/v1/admin/plans/standard", json={"max_storage_bytes": 400_000}, headers=OPERATOR
        )
        assert limited.status_code == 200, limited.text
        key = c.post("/v1/tenants", json={"slug": "acme"}, headers=OPERATOR).json()["api_key"]
        with Database().session() as session:
            tenant, _ = authenticate(session, key)
            TenantScope(session, tenant.id).create_project("handbook", "Handbook", {})
        c.headers["Authorization"] = f"Bearer {key}"
        yield c


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_zip_archive_is_unpacked_into_documents(client):
    faq, leave = sample_files(["workplace-faq.md", "annual-leave-policy.docx"])
    archive = _zip(
        {
            "policies/faq.md": faq.read_bytes(),
            "policies/leave.docx": leave.read_bytes(),
            "../escape.txt": b"plain text",
        }
    )
    response = client.post(
        "/v1/projects/handbook/documents", files=[("f", ("policies.zip", archive))]
    )
    assert response.status_code == 201, response.text
    names = sorted(d["filename"] for d in response.json()["documents"])
    assert names == [
        "policies.zip/escape.txt",
        "policies.zip/policies/faq.md",
        "policies.zip/policies/leave.docx",
    ]
    assert all(d["status"] == "uploaded" for d in response.json()["documents"])
    # A DOCX is a ZIP too, but a document, not an archive.
    docx = client.post(
        "/v1/projects/handbook/documents", files=[("f", ("again.docx", leave.read_bytes()))]
    )
    assert docx.json()["already_present"] == 1


def test_zip_bomb_is_quarantined_not_unpacked(client):
    bomb = _zip({"zeros.txt": b"\0" * (20 << 20)})
    response = client.post("/v1/projects/handbook/documents", files=[("f", ("bomb.zip", bomb))])
    assert response.status_code == 201
    [doc] = response.json()["documents"]
    assert doc["filename"] == "bomb.zip" and doc["status"] == "quarantined"
    assert doc["failure_reason"].startswith("archive_ratio")


def test_storage_quota_refuses_and_keeps_what_was_stored(client):
    first = client.post("/v1/projects/handbook/documents", files=[("f", ("a.txt", b"a" * 300_000))])
    assert first.status_code == 201
    over = client.post("/v1/projects/handbook/documents", files=[("f", ("b.txt", b"b" * 200_000))])
    assert over.status_code == 413 and over.json()["error"]["code"] == "storage_quota_exceeded"
    assert "quota" in over.json()["error"]["message"]
    details = over.json()["error"]["details"]
    assert details["limit"] == "max_storage_bytes" and details["allowed"] == 400_000
    assert details["used"] == 300_000 and details["requested"] == 200_000
    assert [d["filename"] for d in client.get("/v1/projects/handbook/documents").json()] == [
        "a.txt"
    ]


def test_document_detail_and_delete(client):
    [faq] = sample_files(["workplace-faq.md"])
    doc = client.post(
        "/v1/projects/handbook/documents", files=[("f", (faq.name, faq.read_bytes()))]
    ).json()["documents"][0]
    detail = client.get(f"/v1/projects/handbook/documents/{doc['id']}")
    assert detail.status_code == 200
    body = detail.json()
    assert (
        body["document"]["sha256"] == doc["sha256"]
        and body["pages"] == []
        and body["redacted_preview"] is None
    )
    gone = client.delete(f"/v1/projects/handbook/documents/{doc['id']}")
    assert gone.status_code == 204
    assert (
        client.get(f"/v1/projects/handbook/documents/{doc['id']}").json()["error"]["code"]
        == "document_not_found"
    )
    again = client.post(
        "/v1/projects/handbook/documents", files=[("f", (faq.name, faq.read_bytes()))]
    )
    assert again.json()["created"] == 1


def test_project_settings_are_validated(client):
    bad = client.patch(
        "/v1/projects/handbook",
        json={
            "settings": {
                "pii_recognizers": [
                    {"name": "emp", "entity_type": "EMPLOYEE_ID", "pattern": "EMP-("}
                ]
            }
        },
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_settings"
    assert "regex" in bad.json()["error"]["message"]
    policy = client.patch("/v1/projects/handbook", json={"settings": {"pii_policy": "shred"}})
    assert policy.status_code == 400
    ok = client.patch(
        "/v1/projects/handbook",
        json={"settings": {"pii_policy": "block", "near_dup_threshold": 0.7}},
    )
    assert ok.status_code == 200 and ok.json()["settings"]["pii_policy"] == "block"
