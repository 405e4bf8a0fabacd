"""Screen 10 in Chromium: a project's settings form (generated from the typed settings), saved
through the API's validation with a bad value's message beside its field; the data-rights
confirmation; a viewer offered nothing and refused when forging the posts; CSRF; another
tenant's settings 404; axe-core."""

from __future__ import annotations

from tests.e2e.portal.conftest import accept_invitation, accessible, shot


def _csrf(page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")


def test_settings_save_bad_value_data_rights_and_limits(portal, browser):
    made = portal.tenant("wayne", "bruce@wayne.example.com")
    key = {"Authorization": f"Bearer {made['api_key']}"}
    created = portal.http.post(
        "/v1/projects", json={"slug": "manual", "name": "Manual"}, headers=key
    )
    assert created.status_code == 201, created.text
    owner = accept_invitation(browser, portal, made["invitation"]["accept_url"], "Bruce Wayne")
    settings_url = "/t/wayne/projects/manual/settings"

    owner.goto("/t/wayne/projects/manual")
    owner.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    owner.wait_for_url(f"**{settings_url}")
    # The form comes from the settings definition: limits and descriptions from its annotations.
    chunk = owner.locator("#f-chunk-tokens")
    assert chunk.get_attribute("min") == "32" and chunk.get_attribute("max") == "4096"
    assert "Chunk size in tokens" in owner.locator("#f-chunk-tokens-hint").inner_text()
    for group in ("Privacy", "Dataset", "Quality and duplicates", "Training", "Serving"):
        assert owner.get_by_role("heading", name=group, exact=True).is_visible()

    # Save: a chunk size, a custom recogniser with context words, an allow-listed term.
    chunk.fill("300")
    owner.locator("#f-pii-recognizers-0-name").fill("badge")
    owner.locator("#f-pii-recognizers-0-entity-type").fill("EMPLOYEE_ID")
    owner.locator("#f-pii-recognizers-0-pattern").fill(r"EMP-\d{6}")
    owner.locator("#f-pii-recognizers-0-context").fill("badge, staff number")
    owner.locator("#f-pii-allow-terms").fill("Gotham Widget")
    owner.get_by_role("button", name="Save settings").click()
    owner.wait_for_url(f"**{settings_url}")
    assert "Settings saved" in owner.get_by_role("status").first.inner_text()
    stored = portal.http.get("/v1/projects/manual", headers=key).json()["settings"]
    assert stored == {
        "chunk_tokens": 300,
        "pii_recognizers": [
            {
                "name": "badge",
                "entity_type": "EMPLOYEE_ID",
                "pattern": r"EMP-\d{6}",
                "context": ["badge", "staff number"],
            }
        ],
        "pii_allow_terms": ["Gotham Widget"],
    }
    # The recogniser's type is now offered among the entity types to screen.
    assert owner.locator('#f-pii-entities input[value="EMPLOYEE_ID"]').count() == 1

    # A bad value: the API's invalid_settings message beside the field, nothing stored.
    owner.locator("#f-chunk-overlap-tokens").fill("200")
    owner.get_by_role("button", name="Save settings").click()
    message = owner.locator("#f-chunk-overlap-tokens-error")
    assert "chunk_overlap_tokens must be at most half of chunk_tokens" in message.inner_text()
    assert owner.locator("#f-chunk-overlap-tokens").get_attribute("aria-invalid") == "true"
    assert owner.locator("#f-chunk-overlap-tokens").input_value() == "200"  # kept to fix
    assert (
        "chunk_overlap_tokens"
        not in portal.http.get("/v1/projects/manual", headers=key).json()["settings"]
    )

    # Data rights: the current record and a form; recorded with who and when.
    owner.goto(settings_url)
    assert "Not confirmed yet" in owner.locator("#rights-record").inner_text()
    owner.get_by_label("Confirmed by").fill("Bruce Wayne")
    owner.get_by_label("Statement").fill("Wayne Enterprises' own manuals.")
    owner.get_by_role("button", name="Confirm data rights").click()
    owner.wait_for_url("**/settings#data-rights")
    record = owner.locator("#rights-record").inner_text()
    assert "Bruce Wayne" in record and "Wayne Enterprises' own manuals." in record
    rights = portal.http.get("/v1/projects/manual/data-rights", headers=key).json()
    assert rights["confirmed"] and rights["confirmed_by"] == "Bruce Wayne"
    accessible(owner, "settings")
    shot(owner, "10-settings")

    # Without the CSRF token the post is refused, and nothing changes.
    refused = owner.request.post(settings_url + "/", form={"chunk_tokens": "512"})
    assert refused.status == 403
    # Another tenant's settings do not exist for this person.
    portal.tenant("lexcorp", "lex@lexcorp.example.com")
    assert owner.request.get("/t/lexcorp/projects/manual/settings").status == 404

    # A viewer: no Settings entry, the page and a forged post answer 403.
    invited = portal.http.post(
        "/v1/members/invitations",
        json={"email": "alfred@wayne.example.com", "role": "viewer"},
        headers=key,
    ).json()
    viewer = accept_invitation(browser, portal, invited["accept_url"], "Alfred")
    viewer.goto("/t/wayne/projects/manual")
    nav = viewer.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Settings").count() == 0
    assert viewer.request.get(settings_url).status == 403
    forged = viewer.request.post(
        settings_url + "/", form={"chunk_tokens": "512", "_csrf_token": _csrf(viewer)}
    )
    assert forged.status == 403
    forged = viewer.request.post(
        settings_url + "/data-rights",
        form={"confirmed_by": "Alfred", "_csrf_token": _csrf(viewer)},
    )
    assert forged.status == 403
    after = portal.http.get("/v1/projects/manual", headers=key).json()["settings"]
    assert after["chunk_tokens"] == 300
