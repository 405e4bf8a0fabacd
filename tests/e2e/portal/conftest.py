"""The portal in a real browser: Debian's Chromium driven by Playwright, against the API and
Dagster served by real processes on 127.0.0.1 with PostgreSQL, the S3 server and clamd.

Fixtures: `portal` (the running services, once per session: base URL, operator token), `browser`
(headless Chromium), `tenant_with_owner` (a tenant whose owner has accepted the invitation), and
helpers to sign in a page, check it with axe-core and keep a screenshot of every screen in
`SCREENSHOTS` (kept after the run; the main ones are copied into docs/portal.md's images)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from api.demo import start_services, stop_services
from tests.conftest import OPERATOR, OPERATOR_TOKEN, ROOT

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
# (not PRIVATUNE_*: tests/conftest.py clears those)
SCREENSHOTS = Path(os.environ.get("PORTAL_SCREENSHOTS", ROOT / ".privatune" / "screenshots"))
PASSWORD = "orchard lantern seventeen quilts"
# Chromium started as root, with no sandbox, and without the background traffic this closed
# network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Portal:
    url: str
    home: Path
    http: httpx.Client
    emails: list[str] = field(default_factory=list)
    database_url: str = ""  # the services' database, for test data no API makes

    def tenant(self, slug: str, owner_email: str) -> dict:
        """A tenant made by the operator, with its first owner invited (link returned)."""
        made = self.http.post(
            "/v1/tenants",
            json={"slug": slug, "name": slug.title(), "owner_email": owner_email},
            headers=OPERATOR,
        )
        assert made.status_code == 201, made.text
        return made.json()


@pytest.fixture(scope="package")
def portal(
    tmp_path_factory: pytest.TempPathFactory, make_postgres_db_session, s3_server, clamd
) -> Iterator[Portal]:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is needed for the portal tests: `make install` installs it")
    home = tmp_path_factory.mktemp("portal")
    api_port = _free_port()
    env = {
        "PRIVATUNE_CLAMD": clamd.address,
        "PRIVATUNE_DATABASE_URL": make_postgres_db_session(),
        "PRIVATUNE_OBJECT_STORE": "s3",
        "PRIVATUNE_S3_ENDPOINT": s3_server.endpoint,
        "PRIVATUNE_S3_ACCESS_KEY": s3_server.access_key,
        "PRIVATUNE_S3_SECRET_KEY": s3_server.secret_key,
        "PRIVATUNE_S3_BUCKET": "portal",
        "PRIVATUNE_ADMIN_TOKEN": OPERATOR_TOKEN,
        "PRIVATUNE_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        # A short run: a few training steps, a few gold questions in the evaluation.
        "PRIVATUNE_TRAIN_STEPS": "4",
        "PRIVATUNE_EVAL_MAX_QUESTIONS": "2",
    }
    procs = start_services(home, _free_port(), api_port, env)
    url = f"http://127.0.0.1:{api_port}"
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            yield Portal(url, home, http, database_url=env["PRIVATUNE_DATABASE_URL"])
    finally:
        stop_services(procs)


@pytest.fixture(scope="package")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="package", autouse=True)
def screenshots_folder() -> Path:
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    return SCREENSHOTS


def shot(page, name: str) -> Path:
    """A full-page screenshot of the screen, kept after the run."""
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def accessible(page, name: str) -> None:
    """axe-core on the page: no serious or critical violation (the rest is reported)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, f"{name}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in bad
    )


def accept_invitation(browser, portal: Portal, accept_url: str, name: str = "Jo Owner"):
    """A new person accepts an invitation in their own browser; returns their page."""
    context = browser.new_context(base_url=portal.url)
    page = context.new_page()
    path = accept_url.split("127.0.0.1", 1)[-1]
    path = path[path.index("/") :]
    page.goto(path)
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_label("The same password again").fill(PASSWORD)
    page.get_by_role("button", name="Accept and sign in").click()
    page.wait_for_url("**/projects")
    return page


def sign_in(browser, portal: Portal, email: str, password: str = PASSWORD):
    context = browser.new_context(base_url=portal.url)
    page = context.new_page()
    page.goto("/sign-in")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    return page


@dataclass
class TrainedProject:
    """A tenant `acme` whose project `handbook` went once through the whole pipeline (the sample
    documents and one hostile file, a short training run): every screen has data to show.
    `owner` is a signed-in page of its owner; `key` the tenant's owner API key; `run` the run."""

    tenant: str
    project: str
    owner_email: str
    key: str
    run: dict
    owner_context: object

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def page(self):
        """A fresh tab of the owner (signed in)."""
        return self.owner_context.new_page()  # type: ignore[attr-defined]


UPLOADS = [
    "workplace-faq.md",
    "annual-leave-policy.docx",
    "it-security-policy.pdf",
    "expenses-and-travel-policy.docx",
]


@pytest.fixture(scope="package")
def trained_project(portal: Portal, browser) -> TrainedProject:
    """The first half of a new user's journey, in the browser: accept the invitation, create a
    project, upload the sample documents with one hostile file (drag-and-drop form, a progress
    bar per file), confirm the data rights, start a pipeline run from the run form and watch its
    page to the end. The screens' tests (and test_journey.py, its second half) use the result."""
    import re

    from playwright.sync_api import expect

    from tests.conftest import BAD_SAMPLES, sample_files

    made = portal.tenant("acme", "owner@acme.example.com")
    page = accept_invitation(browser, portal, made["invitation"]["accept_url"], "Olive Owner")
    page.get_by_label("Slug").fill("handbook")
    page.get_by_label("Name", exact=True).fill("Handbook")
    page.get_by_role("button", name="Create project").click()
    page.wait_for_url("**/t/acme/projects/handbook/documents")

    files = sample_files(UPLOADS) + [BAD_SAMPLES / "empty.txt"]
    page.locator("#upload-files").set_input_files([str(p) for p in files])
    page.get_by_role("button", name="Upload", exact=True).click()
    uploads = page.locator("#upload-list li")
    expect(uploads).to_have_count(len(files))
    for item in uploads.all():
        expect(item.locator("progress")).to_have_attribute("value", "100", timeout=60_000)
        expect(item.locator("span").last).to_have_text("stored", timeout=60_000)
    shot(page, "04-upload-progress")

    page.goto("/t/acme/projects/handbook/settings")
    page.get_by_label("Confirmed by").fill("Olive Owner")
    page.get_by_label("Statement").fill("Acme's own handbook.")
    page.get_by_role("button", name="Confirm data rights").click()
    expect(page.locator("#data-rights")).to_contain_text("Olive Owner")

    page.goto("/t/acme/projects/handbook/runs/new")
    page.get_by_label("Pipeline").check()
    page.locator("#hp-max_steps").fill("4")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r".*/runs/[0-9a-f]{32}$"))
    run_id = page.url.rsplit("/", 1)[1]
    # The page follows the run live and reloads itself when it ends.
    expect(page.locator("#run-status")).to_have_text(
        re.compile("succeeded|failed|cancelled"), timeout=900_000
    )
    page.wait_for_load_state()
    state = portal.http.get(
        f"/v1/projects/handbook/runs/{run_id}",
        headers={"Authorization": f"Bearer {made['api_key']}"},
    ).json()
    assert state["status"] == "succeeded", state
    shot(page, "06-run-finished")
    return TrainedProject(
        "acme", "handbook", "owner@acme.example.com", made["api_key"], state, page.context
    )
