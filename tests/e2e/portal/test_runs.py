"""Screen 6 in Chromium, on the shared trained project: the runs list; the trained run's page
(stages with durations, the loss curve from its step events, events); a short training run
started from the form (hyperparameters with AdapterConfig's defaults, the preflight estimate
before submitting), followed live (progress bar and loss curve fed by server-sent events),
reloaded mid-run without effect on the run, then watched to its end; cancel and retry of a
run cancelled while queued; a viewer is offered no form nor control and is refused when
forging them, another tenant's pages are 404 and a form without the CSRF token is refused."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from assets.training.config import AdapterConfig
from tests.e2e.portal.conftest import accept_invitation, accessible, shot

BASE = "/t/acme/projects/handbook/runs"
TRAIN_TIMEOUT_MS = 420_000  # a CPU training run of 12 steps, Dagster's start included
TERMINAL = ("succeeded", "failed", "cancelled")


def _csrf(page) -> str:
    return page.locator('meta[name="csrf-token"]').get_attribute("content")


def _chart_steps(page) -> list[int]:
    return page.evaluate("() => Array.from(window.privatune.charts['loss-chart'].data[0])")


def _runs(portal, trained_project) -> list[dict]:
    found = portal.http.get("/v1/projects/handbook/runs", headers=trained_project.headers)
    return found.json()


def _wait_for_status(portal, trained_project, run_id: str, wanted: tuple[str, ...]) -> dict:
    deadline = time.time() + 180
    while time.time() < deadline:
        run = portal.http.get(
            f"/v1/projects/handbook/runs/{run_id}", headers=trained_project.headers
        ).json()
        if run["status"] in wanted:
            return run
        time.sleep(1)
    raise AssertionError(f"run {run_id} did not reach {wanted}: {run['status']}")


def _wait_for_finished_page(page) -> None:
    """Until the page shows the run finished, reloaded (it reloads itself when the run it
    follows ends)."""
    deadline = time.time() + TRAIN_TIMEOUT_MS / 1000
    while time.time() < deadline:
        try:
            if (
                page.locator("[data-follow-run]").count() == 0
                and page.locator("#run-status").inner_text(timeout=1000) in TERMINAL
            ):
                page.wait_for_load_state()
                return
        except PlaywrightError:  # the page was reloading
            pass
        page.wait_for_timeout(1000)
    raise AssertionError(
        "the run did not finish in time: " + page.locator("#run-status").inner_text()
    )


def test_runs_list_and_the_trained_run(portal, trained_project):
    run = trained_project.run
    steps = sorted({e["data"]["step"] for e in run["events"] if e["kind"] == "train_step"})
    stages = [e["stage"] for e in run["events"] if e["kind"] == "stage_started"]
    page = trained_project.page()
    page.goto(BASE)
    row = page.locator("tbody tr", has=page.locator(f'a[href="{BASE}/{run["id"]}"]'))
    expect(row).to_contain_text("pipeline")
    expect(row.locator(".badge")).to_have_text("succeeded")
    expect(row.locator("td.num")).not_to_have_text("")
    expect(page.get_by_role("link", name="Start a run")).to_be_visible()
    accessible(page, "runs")
    shot(page, "06-runs")

    row.get_by_role("link").click()
    page.wait_for_url(f"**{BASE}/{run['id']}")
    expect(page.locator("#run-status")).to_have_text("succeeded")
    # Every stage that finished, with its duration; the loss curve from the step events.
    stage_rows = page.locator("#run-timeline table").first.locator("tbody tr")
    expect(stage_rows).to_have_count(len(stages))
    for stage in ("adapter", "eval_report"):
        expect(stage_rows.filter(has_text=stage).first).to_contain_text("finished")
    expect(page.locator("#loss-chart canvas")).to_be_visible()
    drawn = _chart_steps(page)  # the step events, and any validation loss's step
    assert set(steps) <= set(drawn) and drawn == sorted(drawn) and drawn[-1] == steps[-1]
    expect(page.locator("#run-progress-text")).to_contain_text(f"step {steps[-1]} of")
    # A finished run that succeeded offers neither cancel nor retry, and follows nothing.
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(page.get_by_role("button", name="Retry run")).to_have_count(0)
    expect(page.locator("[data-follow-run]")).to_have_count(0)
    accessible(page, "run (finished)")
    page.close()


def test_live_training_run_from_the_form(portal, trained_project):
    before = {r["id"] for r in _runs(portal, trained_project)}
    page = trained_project.page()
    page.goto(f"{BASE}/new")
    # The fields come from AdapterConfig: defaults and descriptions as the model has them.
    fields = AdapterConfig.model_fields
    expect(page.locator("#hp-rank")).to_have_value(str(fields["rank"].default))
    expect(page.locator("#hp-learning_rate")).to_have_value(str(fields["learning_rate"].default))
    expect(page.locator("#hp-rank-hint")).to_contain_text(fields["rank"].description)
    expect(page.locator("#hp-packing")).to_be_checked()
    for name in fields["target_modules"].default_factory():
        expect(page.get_by_label(name, exact=True)).to_be_checked()
    # The preflight estimate is there before submitting, and follows the fields.
    verdict = page.locator("#estimate-verdict")
    expect(verdict).to_contain_text("needs about", timeout=60_000)
    page.locator("#hp-rank").fill("0")
    expect(page.locator("#estimate-errors")).to_contain_text("rank", timeout=15_000)
    page.locator("#hp-rank").fill("4")
    page.locator("#hp-max_steps").fill("12")
    page.locator("#hp-checkpoint_every").fill("4")
    page.locator("#hp-batch_tokens").fill("512")
    # recomputed for the new fields: one packed step of batch_tokens
    expect(page.locator("#estimate-tokens")).to_have_text("512", timeout=15_000)
    expect(verdict).to_contain_text("needs about")
    expect(page.locator("#estimate-body .badge")).to_have_text("fits")
    accessible(page, "run form")
    shot(page, "06-run-form")

    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f]{32}$"))
    run_id = page.url.rsplit("/", 1)[1]
    assert run_id not in before
    expect(page.locator(".flash.ok")).to_contain_text("Training run started")
    loaded_with = len(_chart_steps(page))

    # Points arrive by server-sent events while the page stays put.
    page.wait_for_function(
        f"window.privatune.charts['loss-chart'].data[0].length > {loaded_with}",
        timeout=TRAIN_TIMEOUT_MS,
    )
    assert page.evaluate("() => document.getElementById('run-progress').value") > 0
    expect(page.locator("#run-progress-text")).to_contain_text("of 12")
    # ... and keep coming: the curve grows step after step.
    page.wait_for_function(
        "window.privatune.charts['loss-chart'].data[0].length >= 4", timeout=TRAIN_TIMEOUT_MS
    )
    shot(page, "06-run-live")
    seen = _chart_steps(page)

    # Reloading mid-run changes nothing about the run; the page redraws what it had and
    # follows the run again.
    page.reload()
    assert set(seen) <= set(_chart_steps(page))
    if page.locator("#run-status").inner_text() not in TERMINAL:
        expect(page.locator("[data-follow-run]")).to_have_count(1)
    # The run goes on to its end; the page reloads itself then (no longer following).
    _wait_for_finished_page(page)
    expect(page.locator("#run-status")).to_have_text("succeeded")
    steps = _chart_steps(page)
    assert steps[-1] == 12 and len(steps) >= len(seen)
    expect(page.locator("#run-progress-text")).to_contain_text("step 12 of 12")
    checkpoints = page.locator(".checkpoints li")
    expect(checkpoints.filter(has_text="step 4 at")).to_have_count(1)
    expect(checkpoints.filter(has_text="step 8 at")).to_have_count(1)
    expect(page.locator("#run-timeline table").first).to_contain_text("adapter")
    run = portal.http.get(
        f"/v1/projects/handbook/runs/{run_id}", headers=trained_project.headers
    ).json()
    assert run["kind"] == "training" and run["status"] == "succeeded"
    assert run["config"]["ops"]["adapter"]["config"] == {
        "max_steps": 12,
        "checkpoint_every": 4,
        "batch_tokens": 512,
        "rank": 4,
    }
    # One run started, whatever the page did.
    assert {r["id"] for r in _runs(portal, trained_project)} - before == {run_id}
    page.close()


def test_cancel_and_retry_a_queued_run(portal, trained_project):
    http, headers = portal.http, trained_project.headers
    made = http.post(
        "/v1/projects/handbook/runs",
        json={"kind": "training", "hyperparameters": {"max_steps": 2}},
        headers=headers,
    )
    assert made.status_code == 202, made.text
    run_id = made.json()["id"]
    page = trained_project.page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{BASE}/{run_id}")
    page.get_by_role("button", name="Cancel run").click()
    page.wait_for_load_state()
    expect(page.locator(".flash")).to_contain_text("Cancellation requested")
    stopped = _wait_for_status(portal, trained_project, run_id, ("cancelled", "failed"))

    page.reload()
    expect(page.locator("#run-status")).to_have_text(stopped["status"])
    page.get_by_role("button", name="Retry run").click()
    page.wait_for_load_state()
    expect(page.locator(".flash.ok")).to_contain_text("Run queued again")
    retried = http.get(f"/v1/projects/handbook/runs/{run_id}", headers=headers).json()
    assert retried["status"] not in TERMINAL, retried["status"]
    # Stopped again at once, so nothing trains.
    http.post(f"/v1/projects/handbook/runs/{run_id}/cancel", headers=headers)
    _wait_for_status(portal, trained_project, run_id, ("cancelled", "failed"))
    page.close()


def test_viewer_other_tenant_and_csrf_are_refused(portal, browser, trained_project):
    http, headers = portal.http, trained_project.headers
    run_url = f"{BASE}/{trained_project.run['id']}"
    count = len(_runs(portal, trained_project))
    invited = http.post(
        "/v1/members/invitations",
        json={"email": "viewer-runs@acme.example.com", "role": "viewer"},
        headers=headers,
    )
    assert invited.status_code == 201, invited.text
    viewer = accept_invitation(browser, portal, invited.json()["accept_url"], "Vera Viewer")

    # A viewer sees the runs and a run, with no form nor control...
    viewer.goto(BASE)
    expect(viewer.locator(f'a[href="{run_url}"]')).to_be_visible()
    expect(viewer.get_by_role("link", name="Start a run")).to_have_count(0)
    viewer.goto(run_url)
    expect(viewer.locator("#run-status")).to_have_text("succeeded")
    expect(viewer.locator("form[action$='/cancel'], form[action$='/retry']")).to_have_count(0)
    assert viewer.goto(f"{BASE}/new").status == 403
    # ... and forging one, with a valid session and CSRF token, is refused.
    token = _csrf(viewer)
    forged = [
        viewer.request.post(f"{BASE}/", form={"_csrf_token": token, "kind": "training"}),
        viewer.request.post(f"{run_url}/cancel", form={"_csrf_token": token}),
        viewer.request.post(f"{run_url}/retry", form={"_csrf_token": token}),
        viewer.request.get(f"{BASE}/estimate?rank=8"),
    ]
    for response in forged:
        assert response.status == 403, response.text()
    viewer.context.close()

    # Another tenant's person: 404 for the pages, the live stream and the forms.
    made = portal.tenant("runrival", "owner@runrival.example.com")
    rival = accept_invitation(browser, portal, made["invitation"]["accept_url"], "Rob Rival")
    assert rival.goto(BASE).status == 404
    assert rival.goto(run_url).status == 404
    assert rival.request.get(f"{run_url}/events").status == 404
    assert rival.request.post(f"{run_url}/retry", form={"_csrf_token": _csrf(rival)}).status == 404
    rival.context.close()

    # The owner's session without the CSRF token: refused, and no run starts.
    owner = trained_project.page()
    refused = owner.request.post(f"{BASE}/", form={"kind": "training", "rank": "8"})
    assert refused.status == 403 and "CSRF" in refused.text()
    assert len(_runs(portal, trained_project)) == count
    owner.close()
