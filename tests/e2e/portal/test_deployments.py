"""Screen 8 in Chromium, on the shared trained project: every version with its runtime, adapter,
index and dataset versions, gate verdict and evaluation figures (as the API gives them);
activating a version (confirmed), rolling back with a reason (in the page's history and the
audit trail) and changing a version's runtime (refused when the kind lacks a field); a viewer is
offered none of these and is refused when forging them, another tenant's page is 404 and a post
without the CSRF token is refused.

Test data: activating and rolling back need two versions, and a second training run would
cost minutes, so the test adds version 2 as a copy of the active row (same adapter, index and
figures) through TenantScope.add_deployment, with no manifest object of its own (a runtime
change then leaves v1's manifest in the object store as it is). The test ends with v1 active
again on its own runtime, as the pipeline left it, for the other screens' tests."""

from __future__ import annotations

from playwright.sync_api import expect

from resources.database import Database
from resources.repository import TenantScope
from resources.tables import Project, Tenant
from tests.e2e.portal.conftest import accept_invitation, accessible, shot

BASE = "/t/acme/projects/handbook/deployments"


def _csrf(page) -> str:
    return page.locator('meta[name="csrf-token"]').get_attribute("content")


def copy_active_deployment(database_url: str) -> int:
    """A new version of acme/handbook that repeats its active one (inactive); its number."""
    from sqlalchemy import select

    with Database(url=database_url).session() as session:
        tenant = session.scalars(select(Tenant).where(Tenant.slug == "acme")).one()
        scope = TenantScope(session, tenant.id)
        project = session.scalars(
            select(Project).where(Project.tenant_id == tenant.id, Project.slug == "handbook")
        ).one()
        active = scope.active_deployment(project.id)
        assert active is not None, "the trained project has an active deployment"
        copy = scope.add_deployment(
            project.id,
            base_model=active.base_model,
            adapter_key=active.adapter_key,
            dataset_version=active.dataset_version,
            manifest_key="",
            manifest=dict(active.manifest),
            metrics=dict(active.metrics),
            dagster_run_id=active.dagster_run_id,
        )
        return copy.version


def test_figures_activate_rollback_and_runtime(portal, trained_project):
    http, headers = portal.http, trained_project.headers
    listed = http.get("/v1/projects/handbook/deployments", headers=headers).json()
    first = next(d for d in listed if d["status"] == "active")
    copy = copy_active_deployment(portal.database_url)

    page = trained_project.page()
    page.goto(BASE)
    expect(page.locator("#active-version")).to_have_text(f"v{first['version']}")
    row = page.locator(f"#version-{first['version']}")
    expect(row.locator(".adapter-version")).to_have_text(first["adapter_version"])
    expect(row.locator(".index-version")).to_have_text(first["index_version"])
    expect(row.locator(".dataset-version")).to_have_text(first["dataset_version"])
    expect(row.locator(".runtime-kind")).to_have_text(first["runtime"]["kind"])
    expect(row.locator("td.gate .badge")).to_have_text(
        "passed" if first["gate"]["passed"] else "blocked"
    )
    figures = page.locator("#figures tbody tr", has_text=f"v{first['version']}")
    candidate = first["metrics"]["candidate"]
    for key in ("semantic_similarity", "citation_accuracy", "refusal_accuracy"):
        expect(figures.locator(f'td[data-figure="{key}"]')).to_contain_text(f"{candidate[key]:.3f}")
    # The pipeline's own activation is in the history.
    expect(
        page.locator('#history tr[data-action="deployment.activated"]', has_text="dagster")
    ).not_to_have_count(0)
    accessible(page, "deployments")
    shot(page, "08-deployments")

    # Activate the new version (the confirmation accepted), then roll back with a reason.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Activate v{copy}").click()
    expect(page.locator(".flash")).to_contain_text(f"Version {copy} is now the active")
    expect(page.locator("#active-version")).to_have_text(f"v{copy}")
    reason = f"v{copy} answers leave questions worse than v{first['version']}"
    page.get_by_label("Back to").select_option(str(first["version"]))
    page.get_by_label("Reason").fill(reason)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Roll back from v{copy}").click()
    expect(page.locator(".flash")).to_contain_text(f"version {first['version']} is now the active")
    expect(page.locator("#active-version")).to_have_text(f"v{first['version']}")
    latest = page.locator("#history tbody tr").first
    expect(latest).to_have_attribute("data-action", "deployment.rolled_back")
    expect(latest.locator(".reason")).to_have_text(reason)
    audited = http.get(
        "/v1/audit", params={"action": "deployment.rolled_back"}, headers=headers
    ).json()["items"][0]
    assert audited["data"] == {
        "from_version": copy,
        "to_version": first["version"],
        "reason": reason,
    }
    assert audited["actor"] == f"user:{trained_project.owner_email}"

    # Change the copy's runtime: a kind without its required field is refused in the form.
    row = page.locator(f"#runtime-{copy}")
    row.get_by_text(f"Change runtime of v{copy}").click()
    row.get_by_label("Runtime", exact=True).select_option("openai")
    row.get_by_role("button", name=f"Save runtime of v{copy}").click()
    expect(page.locator(f"#runtime-error-{copy}")).to_contain_text("needs base_url")
    row.get_by_label("Runtime", exact=True).select_option("ollama")
    row.get_by_label("Upstream address").fill("http://127.0.0.1:11434/v1")
    row.get_by_label("Upstream model name").fill("handbook-v2")
    row.get_by_role("button", name=f"Save runtime of v{copy}").click()
    expect(page.locator(".flash")).to_contain_text(f"Version {copy} is served by ollama")
    expect(page.locator(f"#version-{copy} .runtime-kind")).to_have_text("ollama")
    changed = http.get(f"/v1/projects/handbook/deployments/{copy}", headers=headers).json()
    assert changed["runtime"]["kind"] == "ollama"
    assert changed["runtime"]["base_url"] == "http://127.0.0.1:11434/v1"
    active = http.get(f"/v1/projects/handbook/deployments/{first['version']}", headers=headers)
    assert active.json()["status"] == "active"
    assert active.json()["runtime"] == first["runtime"]
    page.close()


def test_viewer_other_tenant_and_csrf_are_refused(portal, browser, trained_project):
    http, headers = portal.http, trained_project.headers
    versions = http.get("/v1/projects/handbook/deployments", headers=headers).json()
    active = next(d for d in versions if d["status"] == "active")
    invited = http.post(
        "/v1/members/invitations",
        json={"email": "viewer-deployments@acme.example.com", "role": "viewer"},
        headers=headers,
    )
    assert invited.status_code == 201, invited.text
    viewer = accept_invitation(browser, portal, invited.json()["accept_url"], "Vic Viewer")

    # A viewer sees the versions and figures but is offered no control...
    viewer.goto(BASE)
    expect(viewer.locator("#figures tbody tr").first).to_be_visible()
    expect(viewer.get_by_role("button", name="Activate", exact=False)).to_have_count(0)
    expect(viewer.locator("form.runtime-form")).to_have_count(0)
    expect(viewer.get_by_label("Reason")).to_have_count(0)
    # ... and forging one, with a valid session and CSRF token, is refused.
    token = _csrf(viewer)
    forged = [
        viewer.request.post(f"{BASE}/{active['version']}/activate", form={"_csrf_token": token}),
        viewer.request.post(f"{BASE}/rollback", form={"_csrf_token": token, "reason": "forged"}),
        viewer.request.post(
            f"{BASE}/{active['version']}/runtime",
            form={"_csrf_token": token, "kind": "llama_cpp"},
        ),
    ]
    for response in forged:
        assert response.status == 403, response.text()
        assert "may not activate and roll back deployments" in response.text()
    after = http.get("/v1/projects/handbook/deployments", headers=headers).json()
    assert [(d["version"], d["status"], d["runtime"]) for d in after] == [
        (d["version"], d["status"], d["runtime"]) for d in versions
    ]
    viewer.context.close()

    # Another tenant's person: 404, for the page and for its forms.
    made = portal.tenant("deployrival", "owner@deployrival.example.com")
    rival = accept_invitation(browser, portal, made["invitation"]["accept_url"], "Rex Rival")
    assert rival.goto(BASE).status == 404
    rival_post = rival.request.post(
        f"{BASE}/{active['version']}/activate", form={"_csrf_token": _csrf(rival)}
    )
    assert rival_post.status == 404
    rival.context.close()

    # The owner's session without the CSRF token: refused.
    owner = trained_project.page()
    refused = owner.request.post(f"{BASE}/rollback", form={"reason": "no token"})
    assert refused.status == 403 and "CSRF" in refused.text()
    owner.close()
