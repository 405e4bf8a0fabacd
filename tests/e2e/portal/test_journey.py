"""The journey a new user takes, in Chromium. Its first half is the `trained_project` fixture
(accept the invitation, create a project, upload the sample documents with one hostile file,
confirm the data rights, start a run from the form and watch it to the end); this is the second:
the hostile file shows as quarantined with its reason, approve and edit an example, see the
evaluation and the promotion gate, chat and open a citation at its page, roll back, revoke a key.
"""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.portal.conftest import accessible, shot
from tests.e2e.portal.test_deployments import copy_active_deployment

PROJECT = "/t/acme/projects/handbook"


def test_second_half_of_a_new_users_journey(portal, trained_project):
    http, headers = portal.http, trained_project.headers
    page = trained_project.page()
    page.on("dialog", lambda dialog: dialog.accept())

    # The hostile file among the uploads: quarantined, and why.
    page.goto(f"{PROJECT}/documents")
    row = page.locator("tr", has_text="empty.txt")
    expect(row.locator(".badge")).to_have_text("quarantined")
    expect(row).to_contain_text("empty")
    ready = page.locator("tr", has_text="workplace-faq.md")
    expect(ready.locator(".badge")).to_have_text("ready")

    # Approve one example and edit another, in place.
    page.goto(f"{PROJECT}/dataset?split=train&status=auto_accepted")
    rows = [
        r
        for r in page.locator("table.examples tbody tr[data-review-row]").all()
        if r.locator("td").nth(1).inner_text() not in ("refusal", "escalation")
    ]
    approved, edited = rows[0], rows[1]
    approved.get_by_role("button", name="Approve").click()
    expect(approved).to_have_attribute("data-status", "approved")
    question = edited.locator(".question").inner_text()
    edited.get_by_role("link", name="Edit").click()
    new_question = question.rstrip("?").rstrip() + " (journey)?"
    edited.get_by_label("Question").fill(new_question)
    edited.get_by_role("button", name="Save").click()
    expect(edited).to_have_attribute("data-status", "edited")
    expect(edited.locator(".question")).to_have_text(new_question)

    # The evaluation and the promotion gate's verdict.
    page.goto(f"{PROJECT}/evaluations")
    verdict = page.locator("table tbody tr").first
    expect(verdict).to_contain_text("passed")
    verdict.get_by_role("link").first.click()
    page.wait_for_url(re.compile(r".*/evaluations/[0-9a-f]{32}$"))
    expect(page.locator("main")).to_contain_text("candidate")
    expect(page.locator("main")).to_contain_text("base")

    # Chat, and open the first citation at its page with the span highlighted.
    page.goto(f"{PROJECT}/chat")
    page.get_by_role("textbox", name="Your question").fill(
        "How many days of annual leave do employees get?"
    )
    page.get_by_role("button", name="Ask").click()
    answer = page.locator("article.msg.assistant").first
    expect(answer).to_have_attribute("data-state", "done", timeout=300_000)
    link = answer.locator(".citations a").first
    expect(link).to_contain_text("page")
    with page.context.expect_page() as opened:  # a new tab, the conversation stays
        link.click()
    viewer = opened.value
    viewer.wait_for_load_state()
    assert re.search(r"/documents/\w+/view\?page=\d+&start=\d+&end=\d+", viewer.url)
    expect(viewer.locator("mark#cited")).to_be_in_viewport()
    expect(viewer.locator("h1")).to_contain_text("page")
    viewer.close()

    # Roll back: a second version (test data: a copy of the active one, as another run
    # would make), made active, then rolled back with a reason.
    copy = copy_active_deployment(portal.database_url)
    page.goto(f"{PROJECT}/deployments")
    page.get_by_role("button", name=f"Activate v{copy}").click()
    expect(page.locator("#active-version")).to_have_text(f"v{copy}")
    page.get_by_label("Reason").fill("the journey's rollback")
    page.get_by_role("button", name=f"Roll back from v{copy}").click()
    expect(page.locator("#active-version")).not_to_have_text(f"v{copy}")
    listed = http.get("/v1/projects/handbook/deployments", headers=headers).json()
    assert next(d for d in listed if d["status"] == "active")["version"] != copy

    # Revoke a key: made here, it works, revoked, it does not.
    page.goto("/t/acme/keys")
    page.locator("#key-name").fill("journey key")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#key-secret").inner_text().strip()
    bearer = {"Authorization": f"Bearer {secret}"}
    assert http.get("/v1/projects", headers=bearer).status_code == 200
    page.get_by_role("button", name="Revoke key journey key").click()
    page.wait_for_url("**/t/acme/keys")
    assert http.get("/v1/projects", headers=bearer).status_code == 401

    # Everything the journey did is in the tenant's audit trail, and the chain holds.
    page.goto("/t/acme/audit")
    for action in (
        "example.approved",
        "example.edited",
        "deployment.rolled_back",
        "api_key.revoked",
    ):
        expect(page.locator("main")).to_contain_text(action)
    accessible(page, "audit")
    verification = http.get("/v1/audit/verify", headers=headers).json()
    assert verification["ok"], verification
    page.goto(PROJECT)
    accessible(page, "project overview")
    shot(page, "03-project-overview")
    page.close()
