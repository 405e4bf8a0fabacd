"""Onboarding, materialised for one partition: malware scan with a real clamd, admission by
content, isolated extraction with OCR, quality, exact and near dedupe, PII redaction with a
custom recogniser, the blocking PII check, and incremental re-runs."""

from __future__ import annotations

import io
from pathlib import Path

import dagster as dg
import pymupdf
import pytest

from assets.dataset.export import from_jsonl
from pipelines.definitions import all_assets, all_checks
from resources.antivirus import Antivirus
from resources.clamd_local import eicar_bytes
from resources.database import Database
from resources.io_manager import ObjectStoreManifestIOManager
from resources.model_runtime import ModelRuntime
from resources.object_store import ObjectStoreResource
from resources.repository import TenantScope, create_tenant, tenant_by_slug
from resources.tables import Document
from tests.conftest import BAD_SAMPLES, sample_files, sha256

pytestmark = pytest.mark.slow

ONBOARDING = [
    "raw_documents",
    "normalized_documents",
    "deduped_documents",
    "pii_screened_documents",
    "examples",
]
PII_TEXT = (
    "# Contacts\n\nOur payroll officer is Margaret Thornbury. Reach her at margaret.thornbury@example.org "
    "or on +44 20 7946 0958. Her staff number is EMP-204816, and the backup approver is EMP-771203.\n\n"
    "The payroll run closes on the 25th of each month, and late changes go into the next month's run. "
    "Expense reimbursements are paid with the payroll run that follows their approval."
)


def scanned_pdf(text: str) -> bytes:
    """A PDF whose only page is a picture of text (no text layer)."""
    source = pymupdf.open()
    page = source.new_page()
    page.insert_textbox(pymupdf.Rect(50, 50, 550, 800), text, fontsize=14)
    pixmap = page.get_pixmap(dpi=200)
    scan = pymupdf.open()
    out = scan.new_page()
    out.insert_image(out.rect, stream=pixmap.tobytes("png"))
    return scan.tobytes()


def encrypted_pdf() -> bytes:
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "Board minutes: confidential figures.")
    buffer = io.BytesIO()
    doc.save(buffer, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")
    return buffer.getvalue()


class Project:
    def __init__(
        self, db: Database, store: ObjectStoreResource, antivirus: Antivirus, settings: dict
    ):
        self.db, self.store, self.antivirus = db, store, antivirus
        with db.session() as session:
            tenant, _ = create_tenant(session, "acme", "Acme")
            TenantScope(session, tenant.id).create_project("handbook", "Handbook", settings)
        self.instance = dg.DagsterInstance.ephemeral()
        self.instance.add_dynamic_partitions("tenant_project", ["acme__handbook"])

    def add(self, name: str, data: bytes) -> None:
        with self.db.session() as session:
            scope = TenantScope(session, tenant_by_slug(session, "acme").id)
            project = scope.project("handbook")
            digest = sha256(data)
            pstore = self.store.project("acme", "handbook")
            pstore.put_bytes(f"raw/{digest}", data)
            scope.add_document(
                project.id,
                filename=name,
                sha256=digest,
                size_bytes=len(data),
                object_key=pstore.key(f"raw/{digest}"),
                meta={},
            )

    def run(self, antivirus: Antivirus | None = None) -> dg.ExecuteInProcessResult:
        resources = {
            "db": self.db,
            "store": self.store,
            "runtime": ModelRuntime(),
            "antivirus": antivirus or self.antivirus,
            "io_manager": ObjectStoreManifestIOManager(store=self.store),
        }
        return dg.materialize(
            [*all_assets, *all_checks],
            selection=ONBOARDING,
            partition_key="acme__handbook",
            instance=self.instance,
            resources=resources,
        )

    def documents(self) -> dict[str, Document]:
        with self.db.session() as session:
            return {d.filename: d for d in session.query(Document)}


@pytest.fixture
def project(tmp_path, clamd) -> Project:
    db = Database(url=f"sqlite:///{tmp_path}/app.db")
    db.migrate()
    store = ObjectStoreResource(backend="local", root=str(tmp_path / "objects"))
    settings = {
        "pii_policy": "redact",
        "pii_recognizers": [
            {"name": "staff-number", "entity_type": "EMPLOYEE_ID", "pattern": r"\bEMP-\d{6}\b"}
        ],
    }
    return Project(db, store, Antivirus(address=clamd.address, required=True), settings)


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def test_onboarding_end_to_end(project: Project):
    leave, security, faq = sample_files(
        ["workplace-faq.md", "annual-leave-policy.docx", "it-security-policy.pdf"]
    )
    faq_text = faq.read_text()
    project.add(faq.name, faq.read_bytes())
    project.add(leave.name, leave.read_bytes())
    project.add(security.name, security.read_bytes())
    project.add(
        "faq-copy.md", ("\n\n" + faq_text.replace("\n", "\n\n")).encode()
    )  # same text, other bytes
    project.add(
        "faq-edited.md",
        faq_text.replace("laptop", "notebook").replace("manager", "supervisor").encode(),
    )
    project.add("payroll-contacts.md", PII_TEXT.encode())
    project.add(
        "scanned-notice.pdf",
        scanned_pdf(
            "Fire drill notice. The quarterly fire drill takes place on the first Tuesday of March. "
            "All staff leave the building by the nearest exit and gather at assembly point B in the car park."
        ),
    )
    project.add("virus.txt", eicar_bytes() + b"\nplease open me")
    project.add("not-really.pdf", (BAD_SAMPLES / "not-really.pdf").read_bytes())
    project.add("empty.txt", b"")
    project.add("broken.pdf", (BAD_SAMPLES / "broken.pdf").read_bytes())
    project.add("locked.pdf", encrypted_pdf())
    project.add("noise.txt", ("%%%% 1234 #### ~~~~ " * 40).encode())

    result = project.run()
    assert result.success
    docs = project.documents()
    reason = {
        name: (d.status, (d.failure_reason or "").split(":", 1)[0]) for name, d in docs.items()
    }
    assert reason["virus.txt"] == ("quarantined", "malware")
    assert docs["virus.txt"].scan_status == "infected" and "EICAR" in docs["virus.txt"].scan_detail
    assert reason["not-really.pdf"] == ("quarantined", "type_mismatch")
    assert reason["empty.txt"] == ("quarantined", "empty")
    assert reason["broken.pdf"] == ("quarantined", "corrupt")
    assert reason["locked.pdf"] == ("quarantined", "encrypted")
    assert reason["noise.txt"][0] in ("excluded", "quarantined")
    assert reason["faq-copy.md"] == ("duplicate", "duplicate")
    assert (
        docs["faq-copy.md"].duplicate_of == docs["workplace-faq.md"].id
        and docs["faq-copy.md"].similarity == 1.0
    )
    assert reason["faq-edited.md"] == ("duplicate", "duplicate")
    assert 0.8 <= docs["faq-edited.md"].similarity < 1.0
    for name in (
        "workplace-faq.md",
        "annual-leave-policy.docx",
        "it-security-policy.pdf",
        "payroll-contacts.md",
        "scanned-notice.pdf",
    ):
        assert docs[name].status == "ready", (name, docs[name].failure_reason)
        assert docs[name].scan_status == "clean"
    assert docs["scanned-notice.pdf"].extraction_method == "ocr"
    assert (
        docs["it-security-policy.pdf"].language == "en"
        and docs["it-security-policy.pdf"].quality_score > 0.5
    )
    assert docs["payroll-contacts.md"].redaction_status == "redacted"
    assert docs["payroll-contacts.md"].pii_summary.get("EMPLOYEE_ID") == 2

    pstore = project.store.project("acme", "handbook")
    screened = pstore.get_json(f"screened/{docs['payroll-contacts.md'].sha256}.json")
    text = screened["pages"][0]["text"]
    assert "<EMPLOYEE_ID>" in text and "EMP-204816" not in text
    assert "margaret.thornbury@example.org" not in text and "Thornbury" not in text
    ocr = pstore.get_json(f"normalized/{docs['scanned-notice.pdf'].sha256}.json")
    assert ocr["pages"][0]["method"] == "ocr" and ocr["pages"][0]["ocr_confidence"] > 0.5
    assert "assembly point" in ocr["pages"][0]["text"].lower()

    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["no_unredacted_pii"].passed
    assert not checks["quarantine_count"].passed  # a warning: documents were held back
    assert checks["dedupe_ratio"].passed

    # Incremental: one more document costs one extraction and one comparison, nothing else.
    project.add(
        "remote-work-policy.html", sample_files(["remote-work-policy.html"])[0].read_bytes()
    )
    again = project.run()
    assert again.success
    normalized = _metadata(again, "normalized_documents")
    # 8 documents were extracted before (5 kept, 2 duplicates, 1 excluded for low quality).
    assert normalized["reused_from_cache"] == 8, normalized
    assert normalized["documents"] == 8, normalized
    assert _metadata(again, "deduped_documents")["newly_compared"] == 1
    assert _metadata(again, "pii_screened_documents")["reused_from_cache"] == 5
    assert project.documents()["remote-work-policy.html"].status == "ready"


def test_unreachable_scanner_fails_closed_then_retries(project: Project, tmp_path: Path):
    [faq] = sample_files(["workplace-faq.md"])
    project.add(faq.name, faq.read_bytes())
    down = Antivirus(address=f"unix://{tmp_path}/no-clamd.sock", required=True)
    assert project.run(antivirus=down).success
    doc = project.documents()[faq.name]
    assert doc.status == "pending_scan" and doc.failure_reason.startswith("pending_scan")
    assert not project.store.project("acme", "handbook").exists(f"normalized/{doc.sha256}.json")

    from pipelines.sensors import partitions_with_pending_scans

    assert partitions_with_pending_scans(project.db) == ["acme__handbook"]
    assert project.run().success
    doc = project.documents()[faq.name]
    assert doc.status == "ready" and doc.scan_status == "clean"
    assert partitions_with_pending_scans(project.db) == []


@pytest.mark.parametrize("mode", ["review", "fail"])
def test_personal_data_left_in_the_dataset_is_reported_and_held_or_fails(
    project: Project, mode: str
):
    """Unredacted text reaching the dataset (here a screened copy tampered with behind the
    pipeline's back): every finding is reported with its type, document and a masked snippet;
    under `pii_residual: review` (the default) the examples concerned wait in the review queue
    out of training and the chunks are redacted, under `fail` the blocking check fails."""
    project.add("payroll-contacts.md", PII_TEXT.encode())
    assert project.run().success
    settings = {"pii_recognizers": [], **({"pii_residual": mode} if mode == "fail" else {})}
    with project.db.session() as session:
        row = TenantScope(session, tenant_by_slug(session, "acme").id).project("handbook")
        row.settings = {**row.settings, **settings}
        project_settings = dict(row.settings)
    docs = project.documents()
    pstore = project.store.project("acme", "handbook")
    stale = pstore.get_json(f"screened/{docs['payroll-contacts.md'].sha256}.json")
    from assets.privacy.assets import screening_config

    version = screening_config(project_settings).version
    stale["version"] = version
    stale["pages"] = [{"number": 1, "text": PII_TEXT}]
    pstore.put_json(f"screened/{docs['payroll-contacts.md'].sha256}.json", stale)
    with project.db.session() as session:
        row = session.get(Document, docs["payroll-contacts.md"].id)
        row.meta = {**row.meta, "screening": version}
    result = dg.materialize(
        [*all_assets, *all_checks],
        selection=ONBOARDING,
        partition_key="acme__handbook",
        instance=project.instance,
        raise_on_error=False,
        resources={
            "db": project.db,
            "store": project.store,
            "runtime": ModelRuntime(),
            "antivirus": project.antivirus,
            "io_manager": ObjectStoreManifestIOManager(store=project.store),
        },
    )
    check = {e.check_name: e for e in result.get_asset_check_evaluations()}["no_unredacted_pii"]
    assert check.severity == dg.AssetCheckSeverity.ERROR
    findings = check.metadata["findings"].value
    assert {f["entity_type"] for f in findings} >= {"PERSON", "EMAIL_ADDRESS"}
    assert all(f["filename"] == "payroll-contacts.md" for f in findings)
    assert not any("Thornbury" in f["snippet"] for f in findings)  # masked
    with project.db.session() as session:
        scope = TenantScope(session, tenant_by_slug(session, "acme").id)
        handbook = scope.project("handbook")
        events = [e for r in scope.runs(handbook.id) for e in scope.run_events(r.id)]
        examples = scope.examples(handbook.id, scope.latest_generation(handbook.id))
        held = [e for e in examples if e.review_reason == "pii_residual"]
    if mode == "fail":
        assert check.passed is False
        failed = [e for e in events if e.kind == "check_failed"]
        assert failed and failed[-1].data["code"] == "pii_found"
        assert "pii_allow_terms" in failed[-1].data["action"]
        assert failed[-1].data["details"]["findings"][0]["snippet"]
    else:
        assert check.passed is True and check.metadata["routed_to_review"].value > 0
        assert held and all(e.status == "pending" for e in held)
        assert held[0].scores["pii_findings"]
        assert any(e.kind == "pii_review" for e in events)
        chunks = from_jsonl(
            pstore.get_bytes(f"datasets/generations/{scope_generation(project)}/chunks.jsonl")
        )
        assert not any("Thornbury" in c["text"] for c in chunks)


def scope_generation(project: Project) -> str:
    with project.db.session() as session:
        scope = TenantScope(session, tenant_by_slug(session, "acme").id)
        return scope.latest_generation(scope.project("handbook").id)


def test_models_are_prewarmed_only_for_a_document_to_extract(
    project: Project, monkeypatch: pytest.MonkeyPatch
):
    import assets.ingestion.assets as ingestion

    calls: list[str] = []
    monkeypatch.setattr(ingestion, "prewarm", lambda: calls.append("prewarm"))
    project.add("virus.txt", eicar_bytes())
    assert project.run().success
    assert project.documents()["virus.txt"].status == "quarantined"
    assert calls == []  # a quarantined upload is never parsed: no model to load for it
    [faq] = sample_files(["workplace-faq.md"])
    project.add(faq.name, faq.read_bytes())
    assert project.run().success
    assert calls == ["prewarm"]
    assert project.documents()[faq.name].status == "ready"
