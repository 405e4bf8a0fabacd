from __future__ import annotations

import io
import random
import zipfile

import docx
import pymupdf
import pytest

from assets.normalization.sniff import declared_type, decode_text, sniff_type


def _pdf_bytes(text: str = "Quarterly report") -> bytes:
    document = pymupdf.open()
    document.new_page().insert_text((72, 72), text)
    return document.tobytes()


def _docx_bytes() -> bytes:
    document = docx.Document()
    document.add_paragraph("Hello from Word")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def _zip_bytes(names: list[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in names:
            archive.writestr(name, "<x/>")
    return buffer.getvalue()


_RANDOM = random.Random(1234).randbytes(4096)
_LATIN1 = ("Le café servait des crèmes brûlées à la française, très appréciées. " * 5).encode(
    "latin-1"
)
_CSV = b"name,role,days\nAda,engineer,25\nGrace,admiral,30\nLinus,maintainer,20\n"
_PROSE = b"Hello, this is a note.\nIt has commas, but it is prose.\nNothing tabular here.\n"


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        pytest.param(b"", "report.pdf", "empty", id="empty"),
        pytest.param(_pdf_bytes(), "report.pdf", "pdf", id="pdf"),
        pytest.param(_pdf_bytes(), "report.txt", "pdf", id="pdf-named-txt"),
        pytest.param(b"garbage before\n" + _pdf_bytes(), "x", "pdf", id="pdf-after-junk"),
        pytest.param(
            b"%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
            "x",
            "pdf",
            id="pdf-headerless",
        ),
        pytest.param(b"This is plainly text, not a PDF.", "report.pdf", "txt", id="text-named-pdf"),
        pytest.param(_docx_bytes(), "upload.bin", "docx", id="docx-any-name"),
        pytest.param(_zip_bytes(["xl/workbook.xml"]), "book.docx", "unknown", id="xlsx"),
        pytest.param(_zip_bytes(["readme.txt"]), "a.zip", "unknown", id="plain-zip"),
        pytest.param(b"PK\x03\x04" + b"\x00garbage" * 50, "a.docx", "unknown", id="corrupt-zip"),
        pytest.param(_RANDOM, "notes.txt", "unknown", id="random-bytes"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"IHDR" * 10, "a.txt", "unknown", id="png"),
        pytest.param(b"\xff\xd8\xff\xe0" + b"JFIF" * 10, "a.txt", "unknown", id="jpeg"),
        pytest.param(b"GIF89a" + b"abc" * 10, "a.txt", "unknown", id="gif"),
        pytest.param(b"\x7fELF\x02\x01\x01" + b"\x00" * 20, "a", "unknown", id="elf"),
        pytest.param(b"MZ\x90\x00\x03\x00\x00\x00", "a.exe", "unknown", id="exe"),
        pytest.param(b"MZ Holdings annual letter", "a.txt", "txt", id="text-starting-mz"),
        pytest.param(b"\x01\x02\x03\x04\x05abc" * 20, "a.txt", "unknown", id="control-bytes"),
        pytest.param(b"<!DOCTYPE html><html><body>Hi</body></html>", "a.txt", "html", id="doctype"),
        pytest.param(b"\xef\xbb\xbf  <html lang=en>Hi</html>", "a", "html", id="bom-html"),
        pytest.param(b'<?xml version="1.0"?>\n<html>Hi</html>', "a", "html", id="xhtml"),
        pytest.param(b"<div>fragment</div><p>more</p>", "frag", "html", id="fragment"),
        pytest.param(b"# Guide\n\nSome <div>inline html</div>", "g.txt", "md", id="md-with-html"),
        pytest.param(b'<p align="center">logo</p>\nIntro', "README.md", "md", id="md-by-ext"),
        pytest.param(b"# Leave policy\n\nText.", "notes", "md", id="md-heading"),
        pytest.param(b"#hashtag is not a heading", "notes", "txt", id="hashtag"),
        pytest.param(_CSV, "export.csv", "csv", id="csv"),
        pytest.param(_CSV, "export.txt", "csv", id="csv-by-content"),
        pytest.param(_CSV.replace(b",", b";"), "export", "csv", id="csv-semicolon"),
        pytest.param(_PROSE, "export.csv", "txt", id="prose-named-csv"),
        pytest.param(_PROSE, "notes.txt", "txt", id="prose"),
        pytest.param(b"a,b\n1,2,3\n4\n", "x.csv", "txt", id="ragged-csv"),
        pytest.param(_LATIN1, "lettre.txt", "txt", id="latin-1"),
        pytest.param("Grüße aus Köln\n".encode("utf-16"), "a.txt", "txt", id="utf-16-bom"),
    ],
)
def test_sniff_type(data: bytes, filename: str, expected: str) -> None:
    assert sniff_type(data, filename) == expected


def test_pdf_header_only_counts_in_first_kilobyte() -> None:
    assert sniff_type(b"x" * 2000 + _pdf_bytes(), "x.pdf") != "pdf"


def test_sniff_does_not_trust_multibyte_split_at_probe_edge() -> None:
    # 64 KiB of "é" puts a two-byte sequence across the probe boundary.
    data = ("é" * 40_000).encode("utf-8")
    assert sniff_type(data, "a.txt") == "txt"


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("a.pdf", "pdf"),
        ("A.PDF", "pdf"),
        ("dir.v2/report.docx", "docx"),
        ("C:\\Users\\me\\page.HTM", "html"),
        ("page.html", "html"),
        ("notes.markdown", "md"),
        ("notes.md", "md"),
        ("notes.txt", "txt"),
        ("table.csv", "csv"),
        ("archive.tar.gz", None),
        ("book.xlsx", None),
        ("README", None),
        ("dir.pdf/README", None),
        ("", None),
    ],
)
def test_declared_type(filename: str, expected: str | None) -> None:
    assert declared_type(filename) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("naïve".encode(), "naïve"),
        (b"\xef\xbb\xbfna\xc3\xafve", "naïve"),
        ("naïve".encode("utf-16"), "naïve"),
        ("naïve".encode("utf-32"), "naïve"),
        (_LATIN1, _LATIN1.decode("latin-1")),
        ("Grüße aus Köln, schöne Straße".encode("latin-1"), "Grüße aus Köln, schöne Straße"),
        (
            "Nous étions à l’école – “vraiment”".encode("cp1252"),
            "Nous étions à l’école – “vraiment”",
        ),
        (
            "Привет мир, как дела у вас сегодня".encode("cp1251"),
            "Привет мир, как дела у вас сегодня",
        ),
        ("Zażółć gęślą jaźń, pójdźmy".encode("cp1250"), "Zażółć gęślą jaźń, pójdźmy"),
    ],
)
def test_decode_text(data: bytes, expected: str) -> None:
    assert decode_text(data) == expected
