from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import docx
import pymupdf
import pytest

from assets.normalization import extract as extract_module
from assets.normalization.extract import Extraction, ExtractionError, Page, _tsv_confidence, extract
from assets.normalization.isolate import extract_isolated
from assets.normalization.sniff import declared_type, sniff_type

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"


def _pdf(pages: list[str], **save_options: object) -> bytes:
    document = pymupdf.open()
    for text in pages:
        document.new_page().insert_text((72, 72), text)
    document.set_metadata(
        {
            "title": "Staff handbook",
            "author": "HR team",
            "creationDate": "D:20240102030405+01'00'",
            "modDate": "D:20240305",
        }
    )
    return document.tobytes(**save_options)


def _reason(data: bytes, doc_type: str) -> str:
    with pytest.raises(ExtractionError) as raised:
        extract(data, doc_type)
    return raised.value.reason


# --- PDF -------------------------------------------------------------------------


def test_pdf_pages_are_numbered_and_kept_apart() -> None:
    extraction = extract(_pdf(["Annual leave is 25 days.", "Sick leave is unlimited."]), "pdf")

    assert extraction.method == "text"
    assert [page.number for page in extraction.pages] == [1, 2]
    assert "Annual leave is 25 days." in extraction.pages[0].text
    assert "Sick leave" not in extraction.pages[0].text
    assert "Sick leave is unlimited." in extraction.pages[1].text


def test_pdf_metadata_dates_become_iso() -> None:
    metadata = extract(_pdf(["Text"]), "pdf").metadata

    assert metadata["title"] == "Staff handbook"
    assert metadata["author"] == "HR team"
    assert dt.datetime.fromisoformat(metadata["created"]) == dt.datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))
    )
    assert metadata["modified"].startswith("2024-03-05")


def test_pdf_with_user_password_is_encrypted() -> None:
    data = _pdf(
        ["Board minutes"], encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="x", owner_pw="y"
    )

    assert sniff_type(data, "minutes.pdf") == "pdf"
    assert _reason(data, "pdf") == "encrypted"


def test_pdf_with_only_owner_password_extracts() -> None:
    data = _pdf(
        ["Readable by anyone"],
        encryption=pymupdf.PDF_ENCRYPT_AES_256,
        user_pw="",
        owner_pw="y",
        permissions=0,
    )
    assert pymupdf.open(stream=data, filetype="pdf").metadata["encryption"]  # really encrypted

    assert "Readable by anyone" in extract(data, "pdf").pages[0].text


def test_pdf_without_text_is_no_text() -> None:
    document = pymupdf.open()
    document.new_page().draw_rect(pymupdf.Rect(10, 10, 100, 100), color=(0, 0, 0))

    assert _reason(document.tobytes(), "pdf") == "no_text"


@pytest.mark.parametrize("keep", [10, 200, 0.5, 0.9])
def test_truncated_pdf_is_corrupt_or_no_text_never_a_crash(keep: float) -> None:
    data = _pdf(["One page of text", "and another"])
    cut = data[: int(keep * len(data)) if keep < 1 else int(keep)]
    try:
        extraction = extract(cut, "pdf")
    except ExtractionError as error:
        assert error.reason in {"corrupt", "no_text"}
    else:
        # MuPDF rebuilds a lost xref; whatever it recovers must be real text.
        assert "One page of text" in extraction.pages[0].text


def test_cut_to_a_header_is_corrupt() -> None:
    assert _reason(_pdf(["Text"])[:40], "pdf") == "corrupt"


def test_text_claimed_as_pdf_is_corrupt() -> None:
    assert _reason(b"this is just a note", "pdf") == "corrupt"


# --- OCR -------------------------------------------------------------------------

_SCANNED_TEXT = (
    "Quarterly safety report. All warehouse staff must wear protective boots. "
    "Forklift training is renewed every twelve months."
)


def _scanned_page(document: pymupdf.Document, text: str, dpi: int = 150) -> None:
    """Append a page that is only a picture of `text`, as a scanner makes it."""
    source = pymupdf.open()
    page = source.new_page()
    page.insert_textbox(pymupdf.Rect(72, 72, 540, 720), text, fontsize=12)
    pixmap = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY)
    document.new_page().insert_image(page.rect, pixmap=pixmap)


def _scanned_pdf(*pages: str) -> bytes:
    document = pymupdf.open()
    for text in pages:
        if text.startswith("text:"):
            document.new_page().insert_text((72, 72), text.removeprefix("text:"))
        else:
            _scanned_page(document, text)
    return document.tobytes()


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.mark.parametrize("dpi", [150, 200])
def test_scanned_page_is_ocrd(dpi: int) -> None:
    document = pymupdf.open()
    _scanned_page(document, _SCANNED_TEXT, dpi=dpi)
    assert not document[0].get_text().strip()  # really only an image

    extraction = extract(document.tobytes(), "pdf")

    page = extraction.pages[0]
    assert page.method == "ocr"
    assert extraction.method == "ocr"
    assert _words(_SCANNED_TEXT) <= _words(page.text)
    assert page.ocr_confidence is not None and 0.5 < page.ocr_confidence <= 1
    assert extraction.metadata["ocr_pages"] == "1"


def test_text_and_scanned_pages_make_a_mixed_extraction() -> None:
    extraction = extract(_scanned_pdf("text:Annual leave is 25 days a year.", _SCANNED_TEXT), "pdf")

    assert extraction.method == "mixed"
    assert [page.method for page in extraction.pages] == ["text", "ocr"]
    assert extraction.pages[0].ocr_confidence is None
    assert "Annual leave is 25 days" in extraction.pages[0].text
    assert "Forklift training" in extraction.pages[1].text


def test_page_with_enough_text_is_not_ocrd() -> None:
    extraction = extract(_pdf(["Annual leave is 25 days for every employee."]), "pdf")

    assert extraction.method == "text"
    assert extraction.pages[0].method == "text"
    assert "ocr_pages" not in extraction.metadata


def test_ocr_can_be_turned_off() -> None:
    data = _scanned_pdf("text:Annual leave is 25 days a year.", _SCANNED_TEXT)

    extraction = extract(data, "pdf", ocr=False)

    assert extraction.method == "text"
    assert extraction.pages[1].text.strip() == ""
    with pytest.raises(ExtractionError) as raised:
        extract(_scanned_pdf(_SCANNED_TEXT), "pdf", ocr=False)
    assert raised.value.reason == "no_text"


def test_ocr_min_chars_decides_which_pages_need_ocr() -> None:
    # A scan with a short stamp of real text on it: under the threshold it is OCR'd.
    document = pymupdf.open()
    _scanned_page(document, _SCANNED_TEXT)
    document[0].insert_text((72, 760), "Ref 12")

    assert extract(document.tobytes(), "pdf").pages[0].method == "ocr"
    assert extract(document.tobytes(), "pdf", ocr_min_chars=5).pages[0].method == "text"


def test_without_tesseract_data_scanned_pages_stay_empty(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))  # holds no eng.traineddata

    extraction = extract(_scanned_pdf("text:Annual leave is 25 days a year.", _SCANNED_TEXT), "pdf")

    assert extraction.metadata["ocr_unavailable"] == "1"
    assert [page.method for page in extraction.pages] == ["text", "text"]
    assert extraction.pages[1].text.strip() == ""
    with pytest.raises(ExtractionError) as raised:
        extract(_scanned_pdf(_SCANNED_TEXT), "pdf")
    assert raised.value.reason == "no_text"
    assert "OCR" in raised.value.message


def test_without_the_tesseract_binary_ocr_works_but_has_no_confidence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tessdata = extract_module._tessdata("eng")
    assert tessdata is not None
    monkeypatch.setenv("TESSDATA_PREFIX", tessdata)  # MuPDF's own Tesseract needs only this
    monkeypatch.setenv("PATH", "")
    extract_module._tesseract_binary.cache_clear()
    try:
        page = extract(_scanned_pdf(_SCANNED_TEXT), "pdf").pages[0]
    finally:
        extract_module._tesseract_binary.cache_clear()

    assert page.method == "ocr"
    assert "Forklift training" in page.text
    assert page.ocr_confidence is None


def test_missing_ocr_language_counts_as_unavailable() -> None:
    data = _scanned_pdf("text:Annual leave is 25 days a year.", _SCANNED_TEXT)

    assert extract(data, "pdf", ocr_language="xxx").metadata["ocr_unavailable"] == "1"


def test_invalid_ocr_language_is_refused() -> None:
    with pytest.raises(ValueError):
        extract(_pdf(["Text"]), "pdf", ocr_language="eng; rm -rf /")


def _picture_page(document: pymupdf.Document, draw: Callable[[pymupdf.Page], None]) -> None:
    source = pymupdf.open()
    page = source.new_page(width=300, height=300)
    draw(page)
    pixmap = page.get_pixmap(dpi=100)
    document.new_page(width=300, height=300).insert_image(page.rect, pixmap=pixmap)


def _hatching(page: pymupdf.Page) -> None:
    for x in range(0, 300, 6):
        page.draw_line((x, 0), (300 - x, 300), color=(0, 0, 0), width=1.5)


def test_ocr_of_a_picture_below_the_confidence_floor_is_rejected() -> None:
    document = pymupdf.open()
    document.new_page().insert_text((72, 72), "Annual leave is 25 days a year.")
    _picture_page(document, _hatching)  # Tesseract reads "AWSAV Peeie ..." at about 0.12

    extraction = extract(document.tobytes(), "pdf")

    assert extraction.metadata["ocr_rejected_pages"] == "2"
    assert extraction.pages[1] == Page(number=2, text="")
    assert extraction.method == "text"


def test_blank_scan_is_no_text() -> None:
    document = pymupdf.open()
    _picture_page(document, lambda page: None)

    assert _reason(document.tobytes(), "pdf") == "no_text"


@pytest.mark.parametrize(
    ("tsv", "expected"),
    [
        pytest.param(
            "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"
            "1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n"
            "5\t1\t1\t1\t1\t1\t0\t0\t10\t10\t90\tword\n"
            "5\t1\t1\t1\t1\t2\t0\t0\t10\t10\t30\tab\n"
            "5\t1\t1\t1\t1\t3\t0\t0\t10\t10\t95\t \n",
            round((0.9 * 4 + 0.3 * 2) / 6, 4),
            id="length-weighted-words-only",
        ),
        pytest.param("level\tconf\n", 0.0, id="no-words"),
    ],
)
def test_tsv_confidence(tsv: str, expected: float) -> None:
    assert _tsv_confidence(tsv) == expected


# --- DOCX ------------------------------------------------------------------------


def _docx() -> bytes:
    document = docx.Document()
    document.add_heading("Handbook", 0)
    document.add_heading("Leave policy", 1)
    document.add_paragraph("Employees get 25 days.")
    document.add_paragraph("Carry over is allowed", style="List Bullet")
    document.add_paragraph("Ask your manager", style="List Number")
    document.add_heading("Allowances", 2)
    table = document.add_table(rows=3, cols=3)
    for r, row in enumerate(
        [["Role", "Days", "Notes"], ["Engineer", "25", ""], ["Manager", "30", "plus one"]]
    ):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("After the table.")
    document.sections[0].header.paragraphs[0].text = "CONFIDENTIAL HEADER"
    properties = document.core_properties
    properties.title = "Staff handbook"
    properties.author = "HR team"
    properties.created = dt.datetime(2024, 1, 2, 3, 4, 5)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_docx_keeps_structure_in_document_order() -> None:
    text = extract(_docx(), "docx").pages[0].text

    assert text == (
        "# Handbook\n\n"
        "# Leave policy\n\n"
        "Employees get 25 days.\n\n"
        "- Carry over is allowed\n"
        "- Ask your manager\n\n"
        "## Allowances\n\n"
        "Role: Engineer; Days: 25\n"
        "Role: Manager; Days: 30; Notes: plus one\n\n"
        "After the table."
    )


def test_docx_metadata_from_core_properties() -> None:
    metadata = extract(_docx(), "docx").metadata

    assert metadata["title"] == "Staff handbook"
    assert metadata["author"] == "HR team"
    assert metadata["created"].startswith("2024-01-02T03:04:05")
    assert "modified" in metadata


def test_docx_merged_cells_keep_columns_aligned() -> None:
    document = docx.Document()
    table = document.add_table(rows=3, cols=3)
    table.cell(0, 0).text = "Site"
    table.cell(0, 1).merge(table.cell(0, 2)).text = "Headcount"
    for c, value in enumerate(["Paris", "12", "40"]):
        table.cell(1, c).text = value
    table.cell(2, 0).text = "Lyon"
    table.cell(2, 1).merge(table.cell(2, 2)).text = "closed"
    buffer = io.BytesIO()
    document.save(buffer)

    assert extract(buffer.getvalue(), "docx").pages[0].text == (
        "Site: Paris; Headcount: 12; Headcount: 40\nSite: Lyon; Headcount: closed"
    )


def _without_core_properties(package: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(package))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for name in source.namelist():
            if name == "docProps/core.xml":
                continue
            content = source.read(name)
            if name == "_rels/.rels":
                content = re.sub(rb"<Relationship [^>]*core-properties[^>]*/>", b"", content)
            target.writestr(name, content)
    return buffer.getvalue()


def test_docx_without_core_properties_reports_no_invented_metadata() -> None:
    data = _without_core_properties(_docx())
    assert "docProps/core.xml" not in zipfile.ZipFile(io.BytesIO(data)).namelist()

    extraction = extract(data, "docx")

    # python-docx would otherwise report its own default title, "Word Document".
    assert extraction.metadata == {"header": "CONFIDENTIAL HEADER"}
    assert "# Leave policy" in extraction.pages[0].text


def test_docx_header_is_metadata_not_body_text() -> None:
    extraction = extract(_docx(), "docx")

    assert extraction.metadata["header"] == "CONFIDENTIAL HEADER"
    assert "CONFIDENTIAL" not in extraction.pages[0].text
    assert "footer" not in extraction.metadata


@pytest.mark.skipif(not (CORPORA / "docx").is_dir(), reason="shared corpora not present")
@pytest.mark.parametrize(
    ("name", "header", "footer"),
    [
        # The second section links to the first one's header: stated once.
        ("hdr-header-footer.docx", "Header for section-1", "Footer for section 1"),
        ("doc-odd-even-hdrs.docx", "Odd page header.\nEven page header.", None),
        (
            "doc-add-section.docx",
            "Primary (Odd-Page) Header content\nFirst-page header content\nEven Page Header content",
            "Primary (Odd-Page) Footer content\nFirst Page Footer content\nEven Page Footer content",
        ),
    ],
)
def test_docx_headers_and_footers_from_corpus(name: str, header: str, footer: str | None) -> None:
    extraction = extract((CORPORA / "docx" / name).read_bytes(), "docx")

    assert extraction.metadata.get("header") == header
    assert extraction.metadata.get("footer") == footer
    for line in header.split("\n"):
        assert line not in extraction.pages[0].text


def test_docx_corrupt_zip() -> None:
    data = _docx()
    assert _reason(data[: len(data) // 2], "docx") == "corrupt"


# --- HTML ------------------------------------------------------------------------

_HTML = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title> Leave  policy | Acme </title>
<style>.menu { color: red }</style><script>var tracking = "SCRIPTCODE";</script></head>
<body>
<header><a href="/">ACME SITE HEADER</a></header>
<nav><ul><li>Home NAVLINK</li><li>About NAVLINK</li></ul></nav>
<div role="navigation">BREADCRUMB</div>
<main>
  <article>
    <header><h1>Annual leave</h1></header>
    <p>Employees get <b>25</b> days a year.</p>
    <p>Requests go to<br>your manager.</p>
    <h2>Carry over</h2>
    <ul><li>Up to 5 days</li><li>Used by March</li></ul>
    <table>
      <tr><th>Role</th><th>Days</th></tr>
      <tr><td>Engineer</td><td>25</td></tr>
      <tr><td>Manager</td><td>30</td></tr>
    </table>
    <form><input name="q"><button>SEARCHFORM</button></form>
  </article>
</main>
<aside>SIDEBAR PROMO</aside>
<footer>FOOTER Copyright Acme</footer>
<noscript>NOSCRIPT TEXT</noscript>
</body></html>"""


def test_html_drops_boilerplate() -> None:
    text = extract(_HTML, "html").pages[0].text

    for boilerplate in [
        "SCRIPTCODE",
        "menu",
        "ACME SITE HEADER",
        "NAVLINK",
        "BREADCRUMB",
        "SIDEBAR",
        "FOOTER",
        "NOSCRIPT",
        "SEARCHFORM",
    ]:
        assert boilerplate not in text


def test_html_renders_structure() -> None:
    extraction = extract(_HTML, "html")

    assert extraction.metadata == {"title": "Leave policy | Acme"}
    assert extraction.pages[0].text == (
        "# Annual leave\n\n"
        "Employees get 25 days a year.\n\n"
        "Requests go to\nyour manager.\n\n"
        "## Carry over\n\n"
        "- Up to 5 days\n"
        "- Used by March\n\n"
        "Role: Engineer; Days: 25\n"
        "Role: Manager; Days: 30"
    )


def test_html_without_main_uses_body() -> None:
    html = b"<html><body><nav>MENU</nav><h3>Notice</h3><div>Office closed <i>Friday</i>.</div></body></html>"

    assert extract(html, "html").pages[0].text == "### Notice\n\nOffice closed Friday."


def test_html_page_wrapped_in_a_form_keeps_its_content() -> None:
    html = b"""<html><body><form id="aspnetForm">
      <div><form><input name="q"><button>SEARCHFORM</button></form></div>
      <h1>Expenses</h1><p>Submit receipts within 30 days.</p>
    </form></body></html>"""

    assert extract(html, "html").pages[0].text == "# Expenses\n\nSubmit receipts within 30 days."


def test_html_honours_declared_charset() -> None:
    html = '<html><head><meta charset="windows-1252"></head><body><p>Café “crème”</p></body></html>'

    assert extract(html.encode("cp1252"), "html").pages[0].text == "Café “crème”"


def test_html_nested_thousands_deep_does_not_crash() -> None:
    html = b"<html><body>" + b"<div>" * 5000 + b"deep text" + b"</div>" * 5000 + b"</body></html>"

    assert extract(html, "html").pages[0].text == "deep text"


_DIV_SOUP = b"""<!DOCTYPE html><html><head><title>Remote work policy - Acme Intranet</title></head><body>
<div class="top-bar"><a href="/">Acme Intranet</a> <a href="/news">News</a> <a href="/people">People</a></div>
<div id="cookie-consent" class="cookie-banner">We use cookies to improve your experience.
 By continuing you agree to our cookie policy. <a href="#">Accept all cookies</a></div>
<div class="menu"><ul><li><a href="/a">Benefits overview</a></li><li><a href="/b">Payroll calendar</a></li></ul></div>
<div class="content"><div class="post">
<h1>Remote work policy</h1>
<p>Employees may work from home up to three days a week, provided their manager agrees and their
 role allows it. Core collaboration hours are 10:00 to 15:00 in the local time zone of the team.</p>
<h2>Equipment</h2>
<p>The company provides a laptop, a monitor and a headset. Employees are responsible for a safe
 workspace and a reliable internet connection of at least 20 Mbit/s.</p>
<table><tr><th>Item</th><th>Budget</th></tr><tr><td>Chair</td><td>300 EUR</td></tr>
<tr><td>Desk</td><td>250 EUR</td></tr></table>
<h2>Working abroad</h2>
<p>Working from another country for more than ten days a year requires approval from HR, because
 of tax and social security rules that differ from country to country.</p>
<ul><li>Submit the request four weeks ahead</li><li>Include the destination and dates</li></ul>
</div>
<div class="share">Share this: <a>Twitter</a> <a>LinkedIn</a> <a>Email</a></div>
<div class="related"><h3>Related articles</h3><ul><li><a href="/x">Travel expenses explained</a></li>
<li><a href="/y">New parking rules for 2024</a></li></ul></div>
</div>
<div class="site-footer">Copyright 2024 Acme Corp. All rights reserved. <a>Privacy</a> <a>Terms</a></div>
</body></html>"""


def test_html_without_semantic_markup_keeps_only_main_content() -> None:
    text = extract(_DIV_SOUP, "html").pages[0].text

    for boilerplate in [
        "Acme Intranet",
        "cookies",
        "Benefits overview",
        "Share this",
        "Related articles",
        "Travel expenses",
        "Copyright",
    ]:
        assert boilerplate not in text
    assert text.startswith("# Remote work policy\n\nEmployees may work from home")
    assert "\n\n## Equipment\n\n" in text
    assert "Item: Chair; Budget: 300 EUR\nItem: Desk; Budget: 250 EUR" in text
    assert "- Submit the request four weeks ahead\n- Include the destination and dates" in text


def test_html_of_only_boilerplate_is_no_text() -> None:
    assert (
        _reason(b"<html><body><nav>Home</nav><footer>(c)</footer></body></html>", "html")
        == "no_text"
    )


# --- text formats ------------------------------------------------------------------


def test_markdown_is_kept_as_is() -> None:
    source = "# Title\n\n- one\n- two\n\n| a | b |\n|---|---|\n"

    assert extract(source.encode(), "md").pages == [Page(number=1, text=source)]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            ("Le café servait des crèmes brûlées à la française. " * 3).encode("latin-1"),
            "Le café servait des crèmes brûlées à la française. " * 3,
            id="latin-1",
        ),
        pytest.param("Grüße\n".encode("utf-8-sig"), "Grüße\n", id="utf-8-bom"),
        pytest.param("Grüße\n".encode("utf-16"), "Grüße\n", id="utf-16"),
    ],
)
def test_txt_decodes(data: bytes, expected: str) -> None:
    assert extract(data, "txt").pages[0].text == expected


def test_csv_rows_become_named_lines() -> None:
    data = b"name,role,days\nAda,engineer,25\nGrace,,30\n\n"

    assert extract(data, "csv").pages[0].text == (
        "name: Ada; role: engineer; days: 25\nname: Grace; days: 30"
    )


def test_csv_sniffs_dialect_and_quoting() -> None:
    data = b'city;note\nParis;"a; b"\n"New\nYork";plain\n'

    assert (
        extract(data, "csv").pages[0].text == "city: Paris; note: a; b\ncity: New York; note: plain"
    )


def test_csv_with_only_a_header_is_no_text() -> None:
    assert _reason(b"name,role\n", "csv") == "no_text"


# --- dispatch and failure reasons ---------------------------------------------------


@pytest.mark.parametrize("doc_type", ["pdf", "docx", "html", "md", "txt", "csv", "unknown"])
def test_empty_data_is_empty(doc_type: str) -> None:
    assert _reason(b"", doc_type) == "empty"


@pytest.mark.parametrize("doc_type", ["unknown", "xlsx", "", "PDF"])
def test_unsupported_type(doc_type: str) -> None:
    assert _reason(b"some bytes", doc_type) == "unsupported_type"


@pytest.mark.parametrize("doc_type", ["txt", "md", "csv"])
def test_whitespace_only_is_no_text(doc_type: str) -> None:
    assert _reason(b" \n\t\n ", doc_type) == "no_text"


def test_extraction_error_carries_reason_and_message() -> None:
    error = ExtractionError("corrupt", "the PDF cannot be opened")

    assert error.reason == "corrupt"
    assert error.message == "the PDF cannot be opened"
    assert str(error) == "the PDF cannot be opened"
    with pytest.raises(ValueError):
        ExtractionError("bad reason", "x")


def test_extraction_text_joins_non_empty_pages() -> None:
    extraction = Extraction(pages=[Page(1, "a"), Page(2, "  "), Page(3, "b")])

    assert extraction.text == "a\n\nb"


@pytest.mark.parametrize(
    ("data", "filename", "sniffed"),
    [
        pytest.param(_pdf(["Mislabelled"]), "notes.txt", "pdf", id="pdf-as-txt"),
        pytest.param(b"Plain words, nothing else", "scan.pdf", "txt", id="txt-as-pdf"),
    ],
)
def test_mislabelled_files_extract_by_content(data: bytes, filename: str, sniffed: str) -> None:
    doc_type = sniff_type(data, filename)

    assert doc_type == sniffed
    assert extract(data, doc_type).pages[0].text.strip()


# --- real-world corpora ------------------------------------------------------------------


def _corpus_files() -> list[Path]:
    files: list[Path] = []
    if (CORPORA / "docx").is_dir():
        files += sorted((CORPORA / "docx").iterdir())
    if (CORPORA / "pdfjs").is_dir():
        files += sorted((CORPORA / "pdfjs").iterdir())[::15][:60]
    return files


@pytest.mark.skipif(not _corpus_files(), reason="shared corpora not present")
@pytest.mark.parametrize(
    "path", _corpus_files(), ids=lambda path: f"{path.parent.name}/{path.name}"
)
def test_corpus_file_extracts_or_fails_cleanly(path: Path) -> None:
    data = path.read_bytes()
    # Both what the content says and what the name claims: a mislabelled
    # upload reaches extract() with the wrong type too.
    doc_types = {sniff_type(data, path.name), declared_type(path.name)} - {None}
    for doc_type in doc_types:
        assert doc_type is not None
        try:
            # As onboarding runs it: in a worker, OCR on.
            extraction = extract_isolated(data, doc_type)
        except ExtractionError as error:
            # A parser crash or a hang would be a finding about this file, not a pass.
            assert error.reason in {"empty", "unsupported_type", "corrupt", "encrypted", "no_text"}
        else:
            assert extraction.pages
            assert any(page.text.strip() for page in extraction.pages)
            assert [page.number for page in extraction.pages] == list(
                range(1, len(extraction.pages) + 1)
            )
            for page in extraction.pages:
                assert page.method in {"text", "ocr"}
                assert (page.ocr_confidence is not None) <= (page.method == "ocr")
            assert extraction.method in {"text", "ocr", "mixed"}


# --- structure kept for retrieval: definition lists, inline code, PDF headings -------------------


def test_html_definition_terms_become_headings_with_inline_code_inline() -> None:
    html = b"""<html><body><main><h2>Variables</h2><dl>
    <dt><code>gc.auto</code></dt><dd><p>When there are more than this many loose
    objects, <code>git gc --auto</code> packs them. The default value is 6700.</p></dd>
    <dt>-f</dt><dt>--force</dt><dd><p>Remove an unclean worktree.</p></dd>
    </dl><p>Text after the list.</p></main></body></html>"""

    text = extract(html, "html").pages[0].text

    assert text.startswith(
        "## Variables\n\n### gc.auto\n\nWhen there are more than this many loose objects, "
        "git gc --auto packs them. The default value is 6700."
    )
    # several terms of one description make one heading
    assert "\n\n### -f, --force\n\nRemove an unclean worktree." in text


def test_html_permalink_symbols_are_dropped() -> None:
    html = (
        '<html><body><main><h3>Integer types<a class="headerlink" href="#int">\u00b6</a></h3>'
        '<dl><dt id="x"><span>: </span><strong>intmax</strong> (type)'
        '<a href="#x" class="copiable-anchor"> &para;</a></dt><dd>Largest integer.</dd></dl>'
        "</main></body></html>"
    ).encode()

    assert extract(html, "html").pages[0].text == (
        "### Integer types\n\n#### intmax (type)\n\nLargest integer."
    )


def test_html_main_content_found_by_trafilatura_keeps_the_page_markup() -> None:
    entries = "".join(
        f"<dt>setting.number{i}</dt><dd><p>Setting number {i} controls the behaviour of "
        f"component {i} of the system. The default value is {i * 10} units.</p></dd>"
        for i in range(12)
    )
    html = (
        "<html><body><div class='menu'><a href='/a'>Home</a> <a href='/b'>Docs</a></div>"
        f"<div class='content'><h1>Configuration</h1><dl>{entries}</dl></div>"
        "<div class='footer'>Copyright 2024 Example Corp. All rights reserved.</div>"
        "</body></html>"
    ).encode()

    text = extract(html, "html").pages[0].text

    assert "## setting.number3\n\nSetting number 3 controls" in text
    assert "The default value is 30 units." in text


def test_pdf_headings_by_font_size_and_paragraphs_unwrapped() -> None:
    document = pymupdf.open()
    page = document.new_page()
    page.insert_text((72, 72), "2.3 Making the manuals", fontsize=16)
    body = (
        "There is a set of manuals that can be built from the sources, and the reference manual\n"
        "can be compacted by the make target given below once it is built, which takes time.\n"
    )
    page.insert_text((72, 110), body, fontsize=10)
    page.insert_text((72, 150), "Footnotes end here.", fontsize=10)
    text = extract(document.tobytes(), "pdf").pages[0].text

    assert text.startswith("## 2.3 Making the manuals\n\n")
    # the two wrapped lines read as one paragraph
    assert "reference manual can be compacted" in text
