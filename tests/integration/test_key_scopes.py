"""API keys on PostgreSQL: a key's scopes are its power (an `inference` key chats and lists
models, nothing else); a key never carries more than its maker's scopes, now or later (the
maker's demotion caps it, their removal ends it); revoked and expired keys are refused at once;
the key list shows prefixes and last use, never a secret."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from resources.repository import TenantScope
from resources.settings import get_settings
from resources.tables import ApiKey, Tenant
from tests.conftest import OPERATOR
from tests.people import app_client, invite, owner_of

CHAT = {
    "model": "acme/handbook",
    "messages": [{"role": "user", "content": "How many days of leave a year?"}],
}


@pytest.fixture
def env(postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    get_settings.cache_clear()
    with app_client(postgres_url, tmp_path) as (client, app, db):
        owner, owner_key = owner_of(client, app, "acme")
        with db.session() as session:
            tenant = session.scalar(select(Tenant).where(Tenant.slug == "acme"))
            assert tenant is not None
            TenantScope(session, tenant.id).create_project("handbook", "Handbook", {})
        yield client, app, db, owner, owner_key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def make_key(person, scopes: list[str], **extra) -> dict:
    made = person.post("/v1/keys", json={"name": "-".join(scopes), "scopes": scopes, **extra})
    assert made.status_code == 201, made.text
    return made.json()


def error(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_an_inference_key_chats_and_lists_models_and_nothing_else(env):
    client, _, _, owner, _ = env
    key = bearer(make_key(owner, ["inference"])["secret"])
    chat = client.post("/v1/chat/completions", json=CHAT, headers=key)
    # Past the scope check and the quota: the project simply has no deployment yet.
    assert error(chat) == (404, "no_deployment")
    models = client.get("/v1/models", headers=key)
    assert models.status_code == 200 and models.json() == {"object": "list", "data": []}
    me = client.get("/v1/auth/me", headers=key).json()
    assert me["kind"] == "api_key" and me["scopes"] == ["inference"]

    attempts = {
        ("GET", "/v1/projects"): "read",
        ("POST", "/v1/projects"): "admin",
        ("GET", "/v1/projects/handbook"): "read",
        ("GET", "/v1/projects/handbook/documents"): "read",
        ("POST", "/v1/projects/handbook/documents"): "write",
        ("GET", "/v1/projects/handbook/runs"): "read",
        ("POST", "/v1/projects/handbook/runs"): "train",
        ("POST", "/v1/projects/handbook/deployments/1/activate"): "deploy",
        ("GET", "/v1/keys"): "admin",
        ("POST", "/v1/keys"): "admin",
        ("GET", "/v1/members"): "read",
        ("POST", "/v1/members/invitations"): "admin",
        ("GET", "/v1/usage"): "read",
        ("GET", "/v1/audit"): "admin",
        ("GET", "/v1/base-models"): "read",
    }
    bodies = {
        "/v1/projects": {"json": {"slug": "other"}},
        "/v1/projects/handbook/documents": {"files": [("f", ("a.txt", b"Leave is 25 days."))]},
        "/v1/projects/handbook/runs": {"json": {"kind": "pipeline"}},
        "/v1/keys": {"json": {"name": "more", "scopes": ["inference"]}},
        "/v1/members/invitations": {"json": {"email": "x@example.org", "role": "viewer"}},
    }
    for (method, path), scope in attempts.items():
        kw = bodies.get(path, {}) if method == "POST" else {}
        answer = client.request(method, path, headers=key, **kw)
        assert error(answer) == (403, "insufficient_scope"), (method, path, answer.text)
        details = answer.json()["error"]["details"]
        assert details == {"needed_scope": scope, "key_scopes": ["inference"]}, (method, path)
        assert f"`{scope}`" in answer.json()["error"]["message"]
    # nothing was stored by the refused writes
    documents = client.get("/v1/projects/handbook/documents", headers=bearer(env[4]))
    assert documents.json() == []
    assert sorted(k["name"] for k in owner.get("/v1/keys").json()) == ["default", "inference"]


def test_keys_never_carry_more_than_their_maker(env):
    client, _, _, owner, _ = env
    # A key with `admin` may make keys, but only with scopes it has itself.
    maker = make_key(owner, ["read", "admin"])
    headers = bearer(maker["secret"])
    beyond = client.post(
        "/v1/keys", json={"name": "wider", "scopes": ["read", "write"]}, headers=headers
    )
    assert error(beyond) == (403, "insufficient_scope")
    assert beyond.json()["error"]["details"] == {"beyond": ["write"]}
    within = client.post("/v1/keys", json={"name": "narrower", "scopes": ["read"]}, headers=headers)
    assert within.status_code == 201, within.text
    # A person's keys are capped by their role's scopes: an admin has them all, a member none
    # of the key endpoints at all.
    member = invite(owner, env[1], "member@acme.example.com", "member")
    refused = member.post("/v1/keys", json={"name": "mine", "scopes": ["read"]})
    assert error(refused) == (403, "insufficient_role")
    unknown = owner.post("/v1/keys", json={"name": "odd", "scopes": ["read", "root"]})
    assert error(unknown) == (400, "invalid_key")
    names = sorted(k["name"] for k in owner.get("/v1/keys").json())
    assert names == ["default", "narrower", "read-admin"]


def test_a_revoked_key_is_refused_at_once(env):
    client, _, _, owner, _ = env
    made = make_key(owner, ["read"])
    headers = bearer(made["secret"])
    assert client.get("/v1/projects", headers=headers).status_code == 200
    revoked = owner.delete(f"/v1/keys/{made['key']['id']}")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert error(client.get("/v1/projects", headers=headers)) == (401, "invalid_api_key")
    # also as X-API-Key, the other way to send it
    assert error(client.get("/v1/projects", headers={"X-API-Key": made["secret"]})) == (
        401,
        "invalid_api_key",
    )
    assert error(owner.delete(f"/v1/keys/{made['key']['id']}")) == (409, "api_key_revoked")
    listed = owner.get("/v1/keys", params={"include_revoked": True}).json()
    assert {k["id"]: k["state"] for k in listed}[made["key"]["id"]] == "revoked"
    assert made["key"]["id"] not in [k["id"] for k in owner.get("/v1/keys").json()]


def test_an_expired_key_is_refused(env):
    client, _, db, owner, _ = env
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    short = make_key(owner, ["read"], expires_at=soon.isoformat())
    headers = bearer(short["secret"])
    assert client.get("/v1/projects", headers=headers).status_code == 200
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.2)
    assert error(client.get("/v1/projects", headers=headers)) == (401, "invalid_api_key")
    # A key whose expiry is moved into the past (as an operator would) stops at once.
    other = make_key(owner, ["read"], expires_in_days=30)
    assert client.get("/v1/projects", headers=bearer(other["secret"])).status_code == 200
    with db.session() as session:
        row = session.get(ApiKey, other["key"]["id"])
        assert row is not None
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    assert error(client.get("/v1/projects", headers=bearer(other["secret"]))) == (
        401,
        "invalid_api_key",
    )
    states = {k["id"]: k["state"] for k in owner.get("/v1/keys").json()}
    assert states[short["key"]["id"]] == states[other["key"]["id"]] == "expired"
    past = owner.post(
        "/v1/keys",
        json={"name": "late", "scopes": ["read"], "expires_at": "2020-01-01T00:00:00Z"},
    )
    assert error(past) == (400, "invalid_key")


def test_an_admins_key_follows_the_admin_down_and_out(env):
    client, app, _, owner, _ = env
    admin = invite(owner, app, "admin@acme.example.com", "admin")
    made = make_key(admin, ["read", "write", "deploy", "inference", "admin"])
    headers = bearer(made["secret"])
    assert made["key"]["role"] == "admin"
    assert client.get("/v1/keys", headers=headers).status_code == 200

    demoted = owner.patch(f"/v1/members/{admin.user_id}", json={"role": "member"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "member"
    me = client.get("/v1/auth/me", headers=headers).json()
    assert me["role"] == "member"
    # the key's scopes within a member's: deploy and admin are gone
    assert me["scopes"] == ["inference", "read", "write"]
    assert error(client.get("/v1/keys", headers=headers)) == (403, "insufficient_scope")
    assert error(client.get("/v1/audit", headers=headers)) == (403, "insufficient_scope")
    upload = client.post(
        "/v1/projects/handbook/documents",
        files=[("f", ("leave.txt", b"Leave is 25 days a year."))],
        headers=headers,
    )
    assert upload.status_code == 201, upload.text
    # promoted again, the key gets back what it was made with (and no more)
    owner.patch(f"/v1/members/{admin.user_id}", json={"role": "owner"})
    me = client.get("/v1/auth/me", headers=headers).json()
    assert me["role"] == "admin" and "admin" in me["scopes"] and "train" not in me["scopes"]

    assert owner.delete(f"/v1/members/{admin.user_id}").status_code == 204
    for path in ("/v1/projects", "/v1/models", "/v1/auth/me"):
        assert error(client.get(path, headers=headers)) == (401, "invalid_api_key"), path


def test_the_key_list_shows_prefixes_and_last_use_never_secrets(env):
    client, _, db, owner, owner_key = env
    made = make_key(owner, ["read"])
    secret = made["secret"]
    assert secret.startswith(made["key"]["prefix"]) and len(made["key"]["prefix"]) < len(secret)
    listed = owner.get("/v1/keys")
    assert listed.status_code == 200
    assert secret not in listed.text and owner_key not in listed.text
    with db.session() as session:
        hashes = list(session.scalars(select(ApiKey.key_hash)))
    assert all(h not in listed.text for h in hashes)
    for item in listed.json():
        assert "secret" not in item and "key_hash" not in item
    by_id = {k["id"]: k for k in listed.json()}
    assert by_id[made["key"]["id"]]["last_used_at"] is None
    assert client.get("/v1/projects", headers=bearer(secret)).status_code == 200
    used = {k["id"]: k for k in owner.get("/v1/keys").json()}[made["key"]["id"]]
    assert used["last_used_at"] is not None
    assert used["prefix"] == made["key"]["prefix"] and used["state"] == "active"


def test_a_key_stops_when_the_operator_disables_its_maker(env):
    client, app, _, owner, owner_key = env
    admin = invite(owner, app, "admin@acme.example.com", "admin")
    headers = bearer(make_key(admin, ["read"])["secret"])
    assert client.get("/v1/projects", headers=headers).status_code == 200
    disabled = client.patch(
        f"/v1/admin/users/{admin.user_id}", json={"disabled": True}, headers=OPERATOR
    )
    assert disabled.status_code == 200, disabled.text
    assert error(client.get("/v1/projects", headers=headers)) == (401, "invalid_api_key")
    assert admin.get("/v1/auth/me").status_code == 401  # their session ended too
    # The tenant's own key (made at creation, by no person) is untouched.
    assert client.get("/v1/projects", headers=bearer(owner_key)).status_code == 200
