"""Screen 12 in Chromium: the operator pages (tenants, plans, approved base models) for a person
flagged as operator through the operator API; 404 and no navigation entry for anyone else;
creating, suspending, resuming and moving a tenant, creating and editing a plan, adding a base
model, each checked against the /v1/admin API; axe-core on each."""

from __future__ import annotations

from tests.conftest import OPERATOR
from tests.e2e.portal.conftest import accept_invitation, accessible, shot


def test_operator_pages(portal, browser):
    made = portal.tenant("oscorp", "norman@oscorp.example.com")
    page = accept_invitation(browser, portal, made["invitation"]["accept_url"], "Norman Osborn")

    # Not an operator yet: no entry, and the pages do not exist.
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Operator").count() == 0
    for path in ("/operator/tenants", "/operator/plans", "/operator/models"):
        assert page.request.get(path).status == 404, path

    users = portal.http.get("/v1/admin/users", params={"limit": 500}, headers=OPERATOR).json()
    norman = next(u["id"] for u in users if u["email"] == "norman@oscorp.example.com")
    flagged = portal.http.patch(
        f"/v1/admin/users/{norman}", json={"is_operator": True}, headers=OPERATOR
    )
    assert flagged.status_code == 200, flagged.text

    # Tenants: create one with its owner invited; the first key and the link shown once.
    page.goto("/t/oscorp/projects")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Operator").click()
    page.wait_for_url("**/operator/tenants")
    page.get_by_label("Slug").fill("tyrell")
    page.get_by_label("Name", exact=True).fill("Tyrell Corporation")
    page.locator("#tenant-plan").select_option("free")
    page.get_by_label("Owner's e-mail").fill("eldon@tyrell.example.com")
    page.get_by_role("button", name="Create tenant").click()
    page.locator("#tenant-key").wait_for()
    tenant_key = page.locator("#tenant-key").inner_text().strip()
    link = page.locator("#owner-invitation").inner_text().strip()
    assert "/invitations/accept?token=" in link
    key = {"Authorization": f"Bearer {tenant_key}"}
    assert portal.http.get("/v1/projects", headers=key).status_code == 200
    summary = portal.http.get("/v1/admin/tenants/tyrell", headers=OPERATOR).json()
    assert summary["plan"] == "free" and summary["status"] == "active"

    # Suspend with a reason (confirmed), resume, change the plan.
    page.goto("/operator/tenants")
    row = page.locator("#tenant-tyrell")
    row.get_by_label("Reason to suspend tyrell").fill("unpaid invoice")
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Suspend tyrell").click()
    page.wait_for_url("**/operator/tenants")
    assert "suspended" in page.locator("#tenant-tyrell").inner_text()
    refused = portal.http.get("/v1/projects", headers=key)
    assert refused.status_code == 403 and "unpaid invoice" in refused.text
    page.locator("#tenant-tyrell").get_by_role("button", name="Resume tyrell").click()
    page.wait_for_url("**/operator/tenants")
    assert portal.http.get("/v1/projects", headers=key).status_code == 200
    page.locator("#plan-tyrell").select_option("standard")
    page.locator("#tenant-tyrell").get_by_role("button", name="Change plan of tyrell").click()
    page.wait_for_url("**/operator/tenants")
    assert portal.http.get("/v1/admin/tenants/tyrell", headers=OPERATOR).json()["plan"] == (
        "standard"
    )
    accessible(page, "operator tenants")
    shot(page, "12-operator-tenants")

    # Plans: create one, then change a limit in the table (blank: no limit).
    page.get_by_role("navigation", name="Operator").get_by_role("link", name="Plans").click()
    page.wait_for_url("**/operator/plans")
    page.locator("#new-plan-id").fill("pilot")
    page.locator("#new-plan-name").fill("Pilot")
    page.locator("#new-max_documents").fill("50")
    page.locator("#new-max_runs_per_month").fill("4")
    page.get_by_role("button", name="Create plan").click()
    page.wait_for_url("**/operator/plans")
    page.locator("#max_documents-pilot").fill("75")
    page.locator("#max_runs_per_month-pilot").fill("")
    page.get_by_role("button", name="Save plan pilot").click()
    page.wait_for_url("**/operator/plans")
    plans = portal.http.get("/v1/admin/plans", headers=OPERATOR).json()
    pilot = next(p for p in plans if p["id"] == "pilot")
    assert pilot["max_documents"] == 75 and pilot["max_runs_per_month"] is None
    accessible(page, "operator plans")
    shot(page, "12-operator-plans")
    # Without the CSRF token a post is refused, and the plan stays as it is.
    refused = page.request.post(
        "/operator/plans/pilot", form={"name": "Pilot", "max_documents": "1"}
    )
    assert refused.status == 403
    plans = portal.http.get("/v1/admin/plans", headers=OPERATOR).json()
    assert next(p for p in plans if p["id"] == "pilot")["max_documents"] == 75

    # Base models: add one (disabled, for tyrell only: other tests' tenants never see it).
    page.get_by_role("navigation", name="Operator").get_by_role("link", name="Base models").click()
    page.wait_for_url("**/operator/models")
    page.locator("#m-id").fill("tiny-hub-model")
    page.locator("#m-name").fill("Tiny hub model")
    page.locator("#m-kind").select_option("hub")
    page.locator("#m-source").fill("example-org/tiny-model")
    page.locator("#m-licence").fill("apache-2.0")
    page.locator("#m-context").fill("2048")
    page.locator("#m-tenants").fill("tyrell")
    page.get_by_label("Enabled (tenants may train on it)").uncheck()
    page.get_by_role("button", name="Save base model").click()
    page.wait_for_url("**/operator/models")
    registry = portal.http.get("/v1/admin/base-models", headers=OPERATOR).json()
    entry = next(m for m in registry if m["id"] == "tiny-hub-model")
    assert entry["allowed_tenants"] == ["tyrell"] and entry["enabled"] is False
    assert "tiny-hub-model" in page.locator("#model-tiny-hub-model").inner_text()
    accessible(page, "operator models")
    shot(page, "12-operator-models")

    # Another person of the installation: 404 (the pages do not exist for them).
    other = accept_invitation(browser, portal, link, "Eldon Tyrell")
    assert other.request.get("/operator/tenants").status == 404
    # And a forged post with their own CSRF token is refused the same way.
    token = next(c["value"] for c in other.context.cookies() if c["name"] == "csrftoken")
    forged = other.request.post(
        "/operator/tenants/tyrell/suspend", form={"reason": "x", "_csrf_token": token}
    )
    assert forged.status == 404
