"""Screen 4 in Chromium: uploading many files and ZIP archives by drag and drop with a progress
bar and a result per file (stored, already present, quarantined at once, refused by the quota),
the table refreshed after uploads and filtered by status, a document's detail, deleting with a
confirmation; a viewer is offered neither upload nor delete and is refused when forging them,
another tenant's pages are 404 and a post without the CSRF token is refused.

Uploads go to a new tenant on a small plan (no pipeline run); what the pipeline decides (an
empty file quarantined, extraction, PII) is read from the shared trained project."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from tests.conftest import OPERATOR, sample_files
from tests.e2e.portal.conftest import Portal, accept_invitation, accessible, shot

TENANT, PROJECT = "papertrail", "intake"
# Room for one batch of four documents; the next new one is over the plan.
MAX_DOCUMENTS = 4


@dataclass
class Intake:
    page: object
    headers: dict[str, str]

    def documents(self, portal: Portal) -> list[dict]:
        listed = portal.http.get(f"/v1/projects/{PROJECT}/documents", headers=self.headers)
        assert listed.status_code == 200, listed.text
        return listed.json()


@pytest.fixture(scope="module")
def intake(portal: Portal, browser) -> Intake:
    """A tenant on a four-document plan with an empty project, its owner signed in."""
    plan = portal.http.post(
        "/v1/admin/plans",
        json={"id": "four-docs", "name": "Four documents", "max_documents": MAX_DOCUMENTS},
        headers=OPERATOR,
    )
    assert plan.status_code == 201, plan.text
    made = portal.tenant(TENANT, f"owner@{TENANT}.example.com")
    moved = portal.http.post(
        f"/v1/admin/tenants/{TENANT}/plan", json={"plan": "four-docs"}, headers=OPERATOR
    )
    assert moved.status_code == 200, moved.text
    headers = {"Authorization": f"Bearer {made['api_key']}"}
    created = portal.http.post(
        "/v1/projects", json={"slug": PROJECT, "name": "Intake"}, headers=headers
    )
    assert created.status_code == 201, created.text
    page = accept_invitation(browser, portal, made["invitation"]["accept_url"], "Pat Paper")
    return Intake(page, headers)


def _zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _drop(page, files: dict[str, bytes]) -> None:
    """Drop files on the dropzone as a person dragging them from the desktop would."""
    page.evaluate(
        """(files) => {
            const data = new DataTransfer();
            for (const [name, b64] of Object.entries(files)) {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                data.items.add(new File([bytes], name));
            }
            document.querySelector("[data-upload]").dispatchEvent(
                new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
        }""",
        {name: base64.b64encode(data).decode() for name, data in files.items()},
    )


def _outcome(page, filename: str):
    return page.locator("#upload-list li", has_text=filename).locator(".badge")


def _csrf(page) -> str:
    return page.locator('meta[name="csrf-token"]').get_attribute("content")


def test_upload_many_files_see_each_result_filter_open_and_delete(portal, intake, tmp_path):
    page = intake.page
    base = f"/t/{TENANT}/projects/{PROJECT}/documents"
    page.goto(base)
    expect(page.get_by_role("heading", name="Upload")).to_be_visible()
    expect(page.locator("#documents-table")).to_contain_text("No documents yet")

    faq = sample_files(["workplace-faq.md"])[0].read_bytes()
    archive = _zip({"notes/a.md": b"# A\n\nAlpha notes.", "notes/b.txt": b"Bravo notes."})
    # 2 MB of zeros squeezed 1000:1: a zip bomb, refused when unpacked and quarantined at once.
    bomb = _zip({"zeros.txt": b"\0" * 2_000_000})
    _drop(page, {"workplace-faq.md": faq, "notes.zip": archive, "bomb.zip": bomb})

    # One progress bar per file, each run to the end, and what became of each.
    expect(page.locator("#upload-list progress")).to_have_count(3)
    expect(_outcome(page, "workplace-faq.md")).to_have_text("stored")
    expect(_outcome(page, "notes.zip")).to_have_text("2 files stored")
    expect(_outcome(page, "bomb.zip")).to_contain_text("quarantined: archive_ratio")
    for bar in page.locator("#upload-list progress").all():
        expect(bar).to_have_attribute("aria-label", re.compile(r"^upload of "))
        assert bar.evaluate("b => b.value") == 100
    # The table refreshed itself (HTMX) with the four documents, the bomb with its reason.
    table = page.locator("#documents-table")
    expect(table.locator("tbody tr[data-status]")).to_have_count(4)
    bomb_row = table.locator("tr", has_text="bomb.zip")
    expect(bomb_row.locator(".badge")).to_have_text("quarantined")
    expect(bomb_row.locator("td.reason")).to_contain_text("looks like a zip bomb")
    expect(table.locator("tr", has_text="notes.zip/notes/b.txt")).to_be_visible()

    # The same file again is already present; a new one is over the plan's four documents and
    # refused with the API's message. Chosen with the file field this time.
    extra = tmp_path / "extra.txt"
    extra.write_text("One document too many.")
    again = tmp_path / "workplace-faq.md"
    again.write_bytes(faq)
    page.locator("#upload-files").set_input_files([str(again), str(extra)])
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#upload-list progress")).to_have_count(5)
    expect(_outcome(page, "extra.txt")).to_contain_text(f"plan allows {MAX_DOCUMENTS} documents")
    expect(_outcome(page, "extra.txt")).to_have_class("badge bad")
    expect(page.locator("#upload-list li").nth(3).locator(".badge")).to_have_text("already present")
    expect(table.locator("tbody tr[data-status]")).to_have_count(4)
    assert sorted(d["filename"] for d in intake.documents(portal)) == [
        "bomb.zip",
        "notes.zip/notes/a.md",
        "notes.zip/notes/b.txt",
        "workplace-faq.md",
    ]
    accessible(page, "documents after uploads")
    shot(page, "04-documents")

    # The status filter (the overview links to it) shows the quarantined one alone.
    page.get_by_role("navigation", name="Filter by status").get_by_role(
        "link", name="quarantined"
    ).click()
    page.wait_for_url(f"**{base}?status=quarantined")
    expect(page.locator("#documents-table tbody tr[data-status]")).to_have_count(1)
    expect(page.locator("#documents-table")).to_contain_text("archive_ratio")

    # Detail, then delete: dismissing the confirmation keeps it, accepting deletes it.
    page.goto(base)
    page.get_by_role("link", name="workplace-faq.md").click()
    expect(page.get_by_role("heading", name="workplace-faq.md")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete this document").click()
    expect(page.get_by_role("heading", name="workplace-faq.md")).to_be_visible()
    assert len(intake.documents(portal)) == 4
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete this document").click()
    page.wait_for_url(f"**{base}")
    expect(page.get_by_role("status")).to_have_text("Deleted workplace-faq.md.")
    expect(page.locator("#documents-table tbody tr[data-status]")).to_have_count(3)
    assert "workplace-faq.md" not in {d["filename"] for d in intake.documents(portal)}
    events = portal.http.get(
        "/v1/audit", params={"action": "document.deleted"}, headers=intake.headers
    ).json()["items"]
    assert [e["data"]["filename"] for e in events] == ["workplace-faq.md"]
    assert events[0]["actor"] == f"user:owner@{TENANT}.example.com"


def test_pipeline_outcomes_and_the_detail_page(portal, trained_project):
    """The trained project's documents: the empty file quarantined by the pipeline with its
    reason, and one document's extraction per page, PII summary and redacted preview (as the
    API gives them)."""
    http, headers = portal.http, trained_project.headers
    listed = http.get("/v1/projects/handbook/documents", headers=headers).json()
    details = [
        http.get(f"/v1/projects/handbook/documents/{d['id']}", headers=headers).json()
        for d in listed
        if d["status"] == "ready"
    ]
    with_pii = max(details, key=lambda d: sum(d["pii_summary"].values()))
    assert with_pii["pii_summary"], "a sample document with personal data"
    empty = next(d for d in listed if d["filename"] == "empty.txt")
    assert empty["status"] == "quarantined" and empty["failure_reason"]

    page = trained_project.page()
    base = "/t/acme/projects/handbook/documents"
    page.goto(f"{base}?status=quarantined")
    row = page.locator("#documents-table tr", has_text="empty.txt")
    expect(row.locator(".badge")).to_have_text("quarantined")
    expect(row.locator("td.reason")).to_have_text(empty["failure_reason"])
    expect(page.locator("#documents-table tbody tr[data-status]")).to_have_count(
        sum(1 for d in listed if d["status"] == "quarantined")
    )

    doc = with_pii["document"]
    page.goto(f"{base}/{doc['id']}")
    expect(page.get_by_role("heading", name=doc["filename"])).to_be_visible()
    pages = page.locator("section", has=page.get_by_role("heading", name="Pages and how"))
    expect(pages.locator("tbody tr")).to_have_count(len(with_pii["pages"]))
    expect(pages.locator("thead")).to_contain_text("OCR confidence")
    first = with_pii["pages"][0]
    expect(pages.locator("tbody tr").first).to_contain_text(first["method"])
    pii = page.locator("table.pii tbody tr")
    expect(pii).to_have_count(len(with_pii["pii_summary"]))
    kind, count = next(iter(with_pii["pii_summary"].items()))
    expect(page.locator("table.pii tr", has_text=kind)).to_contain_text(str(count))
    preview = page.locator("#redacted-preview")
    first_line = next(line for line in with_pii["redacted_preview"].splitlines() if line.strip())
    expect(preview).to_contain_text(first_line.strip()[:60])
    assert any(f"<{k}>" in preview.inner_text() for k in with_pii["pii_summary"])
    expect(page.get_by_role("button", name="Delete this document")).to_be_visible()
    accessible(page, "document detail")
    shot(page, "04-document-detail")
    page.close()


def test_viewer_other_tenant_and_csrf_are_refused(portal, browser, intake, trained_project):
    http, headers = portal.http, trained_project.headers
    document = next(
        d
        for d in http.get("/v1/projects/handbook/documents", headers=headers).json()
        if d["status"] == "ready"
    )
    base = "/t/acme/projects/handbook/documents"
    invited = http.post(
        "/v1/members/invitations",
        json={"email": "viewer-docs@acme.example.com", "role": "viewer"},
        headers=headers,
    )
    assert invited.status_code == 201, invited.text
    viewer = accept_invitation(browser, portal, invited.json()["accept_url"], "Vera Viewer")

    # A viewer reads the table and the detail but is offered neither upload nor delete...
    viewer.goto(base)
    expect(viewer.locator("#documents-table tbody tr[data-status]").first).to_be_visible()
    expect(viewer.locator("[data-upload]")).to_have_count(0)
    expect(viewer.locator('input[type="file"]')).to_have_count(0)
    viewer.goto(f"{base}/{document['id']}")
    expect(viewer.get_by_role("heading", name=document["filename"])).to_be_visible()
    expect(viewer.get_by_role("button", name="Delete this document")).to_have_count(0)
    # ... and forging them, with a valid session and CSRF token, is refused.
    token = _csrf(viewer)
    forged = viewer.request.post(f"{base}/{document['id']}/delete", form={"_csrf_token": token})
    assert forged.status == 403, forged.text()
    assert "may not" in forged.text()
    forged_upload = viewer.request.post(
        base,
        multipart={
            "_csrf_token": token,
            "files": {"name": "x.md", "mimeType": "text/markdown", "buffer": b"# forged"},
        },
    )
    assert forged_upload.status == 403
    forged_api = viewer.request.post(
        "/v1/projects/handbook/documents",
        multipart={"files": {"name": "x.md", "mimeType": "text/markdown", "buffer": b"# x"}},
        headers={"X-CSRFToken": token},
    )
    assert forged_api.status == 403, forged_api.text()
    assert forged_api.json()["error"]["code"] == "insufficient_role"

    # Another tenant's person: acme's pages do not exist for them, nor intake under acme.
    other = intake.page
    for path in (base, f"{base}/{document['id']}"):
        assert other.goto(path).status == 404, path
    owner = trained_project.page()
    missing = owner.goto(f"/t/acme/projects/{PROJECT}/documents")
    assert missing.status == 404
    papertrail_doc = intake.documents(portal)[0]["id"]
    assert owner.goto(f"{base}/{papertrail_doc}").status == 404

    # The owner's session without the CSRF token: refused, nothing deleted.
    refused = owner.request.post(f"{base}/{document['id']}/delete", form={"x": "1"})
    assert refused.status == 403
    assert "CSRF" in refused.text()
    still = http.get(f"/v1/projects/handbook/documents/{document['id']}", headers=headers)
    assert still.status_code == 200
    owner.close()
    viewer.context.close()
