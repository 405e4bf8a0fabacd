"""Screen 7 in Chromium, on the shared trained project: the evaluations (the candidate with the
promotion gate's verdict, linked to its run) and the candidate's report: every metric of every
system side by side, the gate's verdict and reasons, the report's own plots, and the questions
with the candidate's failures first; another tenant's pages are 404."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.portal.conftest import accept_invitation, accessible, shot

BASE = "/t/acme/projects/handbook/evaluations"


def test_evaluations_and_the_report(portal, trained_project):
    http, headers = portal.http, trained_project.headers
    evaluation = next(
        e
        for e in http.get("/v1/projects/handbook/evaluations", headers=headers).json()
        if e["kind"] == "candidate"
    )
    report = http.get(
        f"/v1/projects/handbook/evaluations/{evaluation['id']}/report", headers=headers
    ).json()
    page = trained_project.page()
    page.goto(BASE)
    row = page.locator("tbody tr", has=page.locator(f'a[href="{BASE}/{evaluation["id"]}"]'))
    expect(row.locator(".badge")).to_have_text("passed" if evaluation["passed"] else "blocked")
    expect(row).to_contain_text(evaluation["adapter_version"])
    expect(row.get_by_role("link", name=trained_project.run["id"][:12])).to_be_visible()
    accessible(page, "evaluations")
    shot(page, "07-evaluations")

    row.get_by_role("link").first.click()
    page.wait_for_url(f"**{BASE}/{evaluation['id']}")
    verdict = page.locator(".verdict")
    expect(verdict.locator(".badge")).to_have_text("passed" if evaluation["passed"] else "blocked")
    for reason in evaluation["reasons"]:
        expect(page.locator("#gate-reasons")).to_contain_text(reason)
    # Every system, every metric, with the report's figures.
    metrics = page.locator("table.metrics")
    systems = list(report["summary"])
    for system in systems:
        expect(metrics.locator("thead")).to_contain_text(system)
    candidate = report["summary"]["candidate"]
    for metric, value in candidate.items():
        if metric == "latency_samples":
            continue
        cells = metrics.locator(f'tbody tr[data-metric="{metric}"] td')
        expect(cells.nth(0)).to_have_text(f"{value:.3f}")
    # The HTML report's plots, reused.
    plots = page.locator(".plots img")
    expect(plots).to_have_count(2)
    assert plots.first.get_attribute("src").startswith("data:image/png;base64,")
    # Every question, the candidate's failures first.
    rows = page.locator("table.questions tbody tr")
    expect(rows).to_have_count(len(report["rows"]))
    results = rows.locator("td:first-child .badge").all_inner_texts()
    assert results == sorted(results, key=lambda r: r != "failed")
    failed = results.count("failed")
    expect(page.get_by_text(f"{failed} of {len(report['rows'])} questions failed")).to_be_visible()
    accessible(page, "evaluation report")
    shot(page, "07-report")
    page.close()


def test_other_tenant_is_refused(portal, browser, trained_project):
    evaluation = portal.http.get(
        "/v1/projects/handbook/evaluations", headers=trained_project.headers
    ).json()[0]
    made = portal.tenant("evalrival", "owner@evalrival.example.com")
    rival = accept_invitation(browser, portal, made["invitation"]["accept_url"], "Eve Rival")
    assert rival.goto(BASE).status == 404
    assert rival.goto(f"{BASE}/{evaluation['id']}").status == 404
    rival.context.close()
