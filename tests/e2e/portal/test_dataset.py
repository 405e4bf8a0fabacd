"""Screen 5 in Chromium, on the shared trained project: dataset versions with their counts,
examples filtered by split and status (the review queue), approving, rejecting and editing an
example in its row (HTMX) with the next training set's counts following each decision; a viewer
is offered no decision and is refused when forging one, another tenant's page is 404 and a
decision without the CSRF token is refused.

Only auto-accepted training examples are decided here, and each ends included again (approved
or edited), so the review queue and what trains stay as the pipeline left them."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.portal.conftest import accept_invitation, accessible, shot

BASE = "/t/acme/projects/handbook/dataset"


def _next_train(page) -> int:
    return int(page.locator('#next-training-set tr[data-split="train"] td.next').inner_text())


def _expect_next_train(page, value: int) -> None:
    expect(page.locator('#next-training-set tr[data-split="train"] td.next')).to_have_text(
        str(value)
    )


def _csrf(page) -> str:
    return page.locator('meta[name="csrf-token"]').get_attribute("content")


def test_versions_filters_and_inline_review(portal, trained_project):
    http, headers = portal.http, trained_project.headers
    versions = http.get("/v1/projects/handbook/datasets", headers=headers).json()
    latest = versions[0]
    page = trained_project.page()
    page.goto(BASE)

    # Versions with their counts per split.
    row = page.locator("table.versions tbody tr").first
    expect(row).to_contain_text(latest["version"])
    for index, split in enumerate(("train", "validation", "gold")):
        expect(row.locator("td").nth(index + 1).locator("strong")).to_have_text(
            str(latest["counts"][split]["examples"])
        )
    # The next training set, as the pipeline's review rule counts it, beside the version's.
    for split in ("train", "validation", "gold"):
        cells = page.locator(f'#next-training-set tr[data-split="{split}"] td')
        expect(cells.first).to_have_text(str(latest["counts"][split]["examples"]))
    assert _next_train(page) == latest["counts"]["train"]["examples"]
    accessible(page, "dataset")
    shot(page, "05-dataset")

    # Filters: a split chosen in the form, then the review queue by its link.
    page.get_by_label("Split").select_option("gold")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**split=gold**")
    splits = page.locator("table.examples tbody tr[data-review-row] td:first-child")
    expect(splits.first).to_have_text("gold")
    assert set(splits.all_inner_texts()) == {"gold"}
    pending = http.get("/v1/projects/handbook/review", headers=headers).json()["total"]
    page.get_by_role("link", name=f"Review queue: {pending} pending").click()
    page.wait_for_url("**status=pending")
    statuses = page.locator("table.examples tbody tr[data-review-row]")
    expect(statuses).to_have_count(min(pending, 25))
    assert {s.get_attribute("data-status") for s in statuses.all()} <= {"pending"}

    # Decisions on auto-accepted training examples, each swapped into its row.
    page.goto(f"{BASE}?split=train&status=auto_accepted")
    start = _next_train(page)
    # Generated from a passage (refusals and escalations are canned answers).
    first_id, second_id = [
        row.get_attribute("id")
        for row in page.locator("table.examples tbody tr[data-review-row]").all()
        if row.locator("td").nth(1).inner_text() not in ("refusal", "escalation")
    ][:2]
    first, second = page.locator(f"#{first_id}"), page.locator(f"#{second_id}")

    first.get_by_role("button", name="Reject").click()
    expect(first).to_have_attribute("data-status", "rejected")
    expect(first.locator(".badge")).to_have_text("rejected")
    _expect_next_train(page, start - 1)
    expect(first.get_by_role("button", name="Reject")).to_have_count(0)
    first.get_by_role("button", name="Approve").click()
    expect(first).to_have_attribute("data-status", "approved")
    _expect_next_train(page, start)

    second.get_by_role("button", name="Reject").click()
    _expect_next_train(page, start - 1)
    question = second.locator(".question").inner_text()
    second.get_by_role("link", name="Edit").click()
    box = second.get_by_label("Question")
    expect(box).to_have_value(question)
    edited = question.rstrip("?").rstrip() + " (per the handbook)?"
    box.fill(edited)
    accessible(page, "review edit")
    shot(page, "05-review-edit")
    second.get_by_role("button", name="Save").click()
    expect(second).to_have_attribute("data-status", "edited")
    expect(second.locator(".question")).to_have_text(edited)
    expect(second).to_contain_text(f"was: {question}")
    _expect_next_train(page, start)

    # Recorded as the API shows them: who decided and the edited text.
    done = http.get(
        "/v1/projects/handbook/review", params={"status": "edited"}, headers=headers
    ).json()["items"]
    mine = next(e for e in done if f"example-{e['id']}" == second_id)
    assert mine["question"] == edited and mine["original"]["question"] == question
    assert mine["reviewed_by"] == f"user:{trained_project.owner_email}"
    page.close()


def test_viewer_other_tenant_and_csrf_are_refused(portal, browser, trained_project):
    http, headers = portal.http, trained_project.headers
    example = http.get(
        "/v1/projects/handbook/review", params={"status": "auto_accepted"}, headers=headers
    ).json()["items"][-1]
    invited = http.post(
        "/v1/members/invitations",
        json={"email": "viewer-dataset@acme.example.com", "role": "viewer"},
        headers=headers,
    )
    assert invited.status_code == 201, invited.text
    viewer = accept_invitation(browser, portal, invited.json()["accept_url"], "Val Viewer")

    viewer.goto(BASE)
    expect(viewer.locator("table.examples tbody tr[data-review-row]").first).to_be_visible()
    for name in ("Approve", "Reject", "Edit"):
        expect(viewer.get_by_role("button", name=name)).to_have_count(0)
    expect(viewer.get_by_role("link", name="Edit")).to_have_count(0)
    token = _csrf(viewer)
    for action in ("approve", "reject"):
        forged = viewer.request.post(
            f"{BASE}/examples/{example['id']}/{action}", form={"_csrf_token": token}
        )
        assert forged.status == 403, forged.text()
    forged_edit = viewer.request.post(
        f"{BASE}/examples/{example['id']}/edit",
        form={"_csrf_token": token, "question": "Forged?", "answer": "Forged."},
    )
    assert forged_edit.status == 403
    forged_api = viewer.request.post(
        f"/v1/projects/handbook/review/{example['id']}/reject",
        data="{}",
        headers={"X-CSRFToken": token, "Content-Type": "application/json"},
    )
    assert forged_api.status == 403, forged_api.text()
    after = http.get(
        "/v1/projects/handbook/review", params={"status": "auto_accepted"}, headers=headers
    ).json()["items"]
    assert example["id"] in {e["id"] for e in after}, "the viewer's decision changed nothing"
    viewer.context.close()

    # Another tenant's person: 404.
    made = portal.tenant("datarival", "owner@datarival.example.com")
    rival = accept_invitation(browser, portal, made["invitation"]["accept_url"], "Rita Rival")
    assert rival.goto(BASE).status == 404
    assert rival.goto(f"{BASE}/examples/{example['id']}/edit").status == 404
    rival.context.close()

    # The owner's session without the CSRF token: refused.
    owner = trained_project.page()
    refused = owner.request.post(f"{BASE}/examples/{example['id']}/reject", form={"x": "1"})
    assert refused.status == 403 and "CSRF" in refused.text()
    owner.close()
