"""Screen 11 in Chromium: members (invite through the portal, accept in another browser,
change a role; admins cannot grant owner; a viewer offered nothing and refused when forging),
API keys (the secret shown once, working against the API, refused once revoked), usage against
the plan's limits, the audit log (filters, export, the chain verified); CSRF; another tenant's
pages 404; axe-core on each."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.portal.conftest import accept_invitation, accessible, shot

SLUG = "stark"


def _csrf(page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")


def _member_id(portal, key: dict, email: str) -> str:
    members = portal.http.get("/v1/members", headers=key).json()
    return next(m["user_id"] for m in members if m["email"] == email)


@pytest.fixture(scope="module")
def stark(portal, browser):
    """A tenant with one uploaded document, and its owner's page."""
    made = portal.tenant(SLUG, "tony@stark.example.com")
    key = {"Authorization": f"Bearer {made['api_key']}"}
    created = portal.http.post("/v1/projects", json={"slug": "armour"}, headers=key)
    assert created.status_code == 201, created.text
    upload = portal.http.post(
        "/v1/projects/armour/documents",
        files=[("files", ("notes.txt", b"Suit maintenance happens every Friday.\n" * 20))],
        headers=key,
    )
    assert upload.status_code == 201, upload.text
    owner = accept_invitation(browser, portal, made["invitation"]["accept_url"], "Tony Stark")
    return owner, key


def test_members_invite_accept_roles_and_viewer_limits(portal, browser, stark):
    owner, key = stark
    owner.goto(f"/t/{SLUG}/members")
    # Owners are offered the owner role.
    assert "owner" in owner.locator("#invite-role option").all_inner_texts()
    owner.locator("#invite-email").fill("pepper@stark.example.com")
    owner.locator("#invite-role").select_option("viewer")
    owner.get_by_role("button", name="Send invitation").click()
    # No mail server here: the link is on the page, once.
    link = owner.locator("#invitation-url")
    link.wait_for()
    accept_url = link.inner_text().strip()
    assert "/invitations/accept?token=" in accept_url
    assert owner.get_by_role("button", name="Copy link").get_attribute("data-copy")
    owner.reload()
    assert accept_url not in owner.content()
    assert "pepper@stark.example.com" in owner.locator("table").last.inner_text()  # pending

    viewer = accept_invitation(browser, portal, accept_url, "Pepper Potts")
    viewer.goto(f"/t/{SLUG}/members")
    assert "Pepper Potts" in viewer.content()
    # A viewer sees the members but no invite, role, remove or key controls ...
    assert viewer.get_by_role("button", name="Send invitation").count() == 0
    assert viewer.get_by_role("button", name="Change role").count() == 0
    assert viewer.get_by_role("button", name="Remove").count() == 0
    nav = viewer.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="API keys").count() == 0
    assert nav.get_by_role("link", name="Audit log").count() == 0
    # ... and forged posts with their own session and CSRF token are refused.
    token = _csrf(viewer)
    pepper = _member_id(portal, key, "pepper@stark.example.com")
    tony = _member_id(portal, key, "tony@stark.example.com")
    for path, form in (
        (f"/t/{SLUG}/members/invitations", {"email": "x@stark.example.com", "role": "owner"}),
        (f"/t/{SLUG}/members/{pepper}/role", {"role": "owner"}),
        (f"/t/{SLUG}/members/{tony}/remove", {}),
        (f"/t/{SLUG}/keys", {"name": "mine", "scopes": "read"}),
    ):
        assert viewer.request.post(path, form={**form, "_csrf_token": token}).status == 403, path
    assert viewer.request.get(f"/t/{SLUG}/keys").status == 403

    # The owner makes Pepper an admin with the role select.
    owner.goto(f"/t/{SLUG}/members")
    owner.get_by_label("Role of pepper@stark.example.com").select_option("admin")
    owner.get_by_role("button", name="Change role of pepper@stark.example.com").click()
    owner.wait_for_url(f"**/t/{SLUG}/members")
    assert "pepper@stark.example.com is now admin" in owner.get_by_role("status").first.inner_text()
    accessible(owner, "members")
    shot(owner, "11-members")

    # An admin is not offered owner; forcing it shows the service's refusal.
    viewer.goto(f"/t/{SLUG}/members")
    assert "owner" not in viewer.locator("#invite-role option").all_inner_texts()
    refused = viewer.request.post(
        f"/t/{SLUG}/members/invitations",
        form={"email": "happy@stark.example.com", "role": "owner", "_csrf_token": _csrf(viewer)},
    )
    assert refused.status == 403
    assert "only an owner can make someone an owner" in refused.text()

    # Without the CSRF token: refused.
    assert (
        owner.request.post(
            f"/t/{SLUG}/members/invitations",
            form={"email": "y@stark.example.com", "role": "viewer"},
        ).status
        == 403
    )


def test_api_key_shown_once_works_and_revoked(portal, stark):
    owner, _ = stark
    owner.goto(f"/t/{SLUG}/keys")
    # Only the caller's own scopes are offered (an owner has all six).
    assert owner.locator('input[name="scopes"]').count() == 6
    owner.locator("#key-name").fill("nightly upload")
    ticked = owner.locator('input[name="scopes"]:checked')
    assert [ticked.nth(i).get_attribute("value") for i in range(ticked.count())] == ["read"]
    owner.locator('input[name="scopes"][value="inference"]').check()
    owner.get_by_label("Expires after").fill("30")
    owner.get_by_role("button", name="Create key").click()
    secret_box = owner.locator("#key-secret")
    secret_box.wait_for()
    secret = secret_box.inner_text().strip()
    assert secret and owner.get_by_role("button", name="Copy secret").is_visible()
    row = owner.locator("tr", has_text="nightly upload")
    assert "read, inference" in row.inner_text() and "write" not in row.inner_text()
    accessible(owner, "keys")
    shot(owner, "11-keys")
    owner.reload()
    assert secret not in owner.content()  # shown once: gone on reload

    bearer = {"Authorization": f"Bearer {secret}"}
    assert portal.http.get("/v1/projects", headers=bearer).status_code == 200
    owner.once("dialog", lambda dialog: dialog.accept())
    owner.get_by_role("button", name="Revoke key nightly upload").click()
    owner.wait_for_url(f"**/t/{SLUG}/keys")
    assert "revoked" in owner.get_by_role("status").first.inner_text()
    assert portal.http.get("/v1/projects", headers=bearer).status_code == 401


def test_usage_audit_and_other_tenant(portal, stark):
    owner, key = stark
    owner.goto(f"/t/{SLUG}/usage")
    usage = portal.http.get("/v1/usage", headers=key).json()
    for limit in usage["limits"]:
        row = owner.locator(f"#limit-{limit['limit']}")
        assert row.count() == 1
        if limit["percent"] is not None:
            meter = row.locator("meter")
            assert meter.get_attribute("value") == str(limit["used"])
            assert meter.get_attribute("max") == str(limit["allowed"])
    documents = owner.locator("#limit-max_documents")
    assert documents.locator("meter").get_attribute("value") == "1"
    assert "refused (413)" in documents.inner_text()
    accessible(owner, "usage")
    shot(owner, "11-usage")

    owner.goto(f"/t/{SLUG}/audit")
    status = owner.locator("#chain-status")
    assert "Chain verified" in status.inner_text()
    assert portal.http.get("/v1/audit/verify", headers=key).json()["ok"]
    owner.get_by_label("Action starts with").fill("member.")
    owner.get_by_role("button", name="Filter").click()
    owner.wait_for_url(re.compile(r"/audit\?action=member\."))
    actions = owner.locator("table.audit tbody tr td:nth-child(4)").all_inner_texts()
    assert actions and all(a.startswith("member.") for a in actions), actions
    assert "member.joined" in actions
    # The export link is the JSON API's, with the same filter; cookie authentication works.
    export = owner.get_by_role("link", name="Export these events (JSONL)").get_attribute("href")
    exported = owner.request.get(export)
    assert exported.status == 200
    lines = [json.loads(line) for line in exported.text().splitlines() if line.strip()]
    assert lines and all(line["action"].startswith("member.") for line in lines)
    accessible(owner, "audit")
    shot(owner, "11-audit")
    # Paging: events before a seq, newest first.
    older = owner.request.get(f"/t/{SLUG}/audit?before_seq=4").text()
    seqs = [int(s) for s in re.findall(r'<td class="num">(\d+)</td>', older)]
    assert seqs == [3, 2, 1]

    # Another tenant's pages do not exist for this person.
    portal.tenant("hammer", "justin@hammer.example.com")
    for page in ("members", "keys", "usage", "audit"):
        assert owner.request.get(f"/t/hammer/{page}").status == 404, page
