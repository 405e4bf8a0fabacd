"""Detect a document's type from its bytes, and decode text documents.

Uploads arrive with whatever name the user's machine gave them, so the type that
drives extraction comes from the content; the filename only breaks ties between
text formats that share the same bytes (Markdown, CSV, plain text).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
import zlib

import charset_normalizer

DOC_TYPES: tuple[str, ...] = ("pdf", "docx", "html", "md", "txt", "csv")

_EXTENSIONS: dict[str, str] = {
    "pdf": "pdf",
    "docx": "docx",
    "html": "html",
    "htm": "html",
    "md": "md",
    "markdown": "md",
    "txt": "txt",
    "csv": "csv",
}

# Acrobat accepts a PDF header anywhere in the first KB; files with junk in front
# of it (mail gateways, broken exporters) are common enough to honour.
_PDF_HEADER_WINDOW = 1024
# Some writers omit the header line but the body opens with an indirect object
# ("1 0 obj"); MuPDF reads such files, and as text they would be noise.
_PDF_HEADERLESS = re.compile(rb"\A\s*(?:%[^\r\n]*[\r\n]+\s*)*\d+\s+\d+\s+obj\b")
_TEXT_PROBE = 8192
# Enough to classify; charset detection on a multi-MB upload buys nothing more.
_DECODE_PROBE = 64 * 1024
_HTML_PROBE = 2048
_CSV_PROBE_LINES = 20
_MAX_CONTENT_TYPES = 1024 * 1024

_BINARY_MAGICS: tuple[bytes, ...] = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",  # JPEG
    b"GIF87a",
    b"GIF89a",
    b"\x7fELF",
    b"\x1f\x8b",  # gzip
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",  # OLE2: legacy .doc/.xls, which we cannot read yet
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"II*\x00",  # TIFF
    b"MM\x00*",
    b"%!PS",  # PostScript is technically text but not a document we can extract
)

_PREFERRED_ON_TIE = ("cp1252", "latin_1", "iso8859_15")
_TIE = 0.01

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 before UTF-16: the UTF-32-LE BOM starts with the UTF-16-LE one.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Bytes that never occur in text files; \t \n \r \f \v and ESC (ANSI colours in
# logs) do, so they are not counted.
_NON_TEXT_BYTES = frozenset(set(range(0x00, 0x20)) - {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1B}) | {0x7F}
_MAX_NON_TEXT_SHARE = 0.10

_HTML_START = re.compile(
    r"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])",
    re.IGNORECASE | re.DOTALL,
)
_HTML_STRONG_TAG = re.compile(r"<(?:body|head)[\s>]", re.IGNORECASE)
# Markdown files routinely embed <p>/<div> (centred README banners), so these
# only count as HTML when nothing says Markdown.
_HTML_WEAK_TAG = re.compile(r"<(?:p|div)[\s>]", re.IGNORECASE)
_MD_HEADING = re.compile(r"^#{1,6} ", re.MULTILINE)
_CSV_DELIMITERS = ",;\t|"


def declared_type(filename: str) -> str | None:
    """The type a filename's extension claims, or None when it claims none we read."""
    name = re.split(r"[\\/]", filename)[-1]
    if "." not in name:
        return None
    return _EXTENSIONS.get(name.rsplit(".", 1)[1].lower())


def sniff_type(data: bytes, filename: str = "") -> str:
    """Detect the document type from content.

    Returns one of DOC_TYPES, "empty" for zero bytes, or "unknown".
    """
    if not data:
        return "empty"
    head = data[:_PDF_HEADER_WINDOW]
    if b"%PDF-" in head or _PDF_HEADERLESS.match(head):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        return _sniff_zip(data)
    if _is_binary(data):
        return "unknown"
    text = _decode_probe(data[:_DECODE_PROBE])
    if text is None:
        return "unknown"
    return _sniff_text(text, declared_type(filename))


def decode_text(data: bytes) -> str | None:
    """Decode a text document: BOM first, then strict UTF-8, then the best guess.

    Returns None when no encoding makes sense of the bytes.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                return None
            # The utf-16/utf-32 codecs keep nothing of the BOM, utf-8-sig neither;
            # a second BOM after the first is content we do not want either.
            return text.lstrip("\ufeff")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _guess_decode(data)


def _guess_decode(data: bytes) -> str | None:
    results = charset_normalizer.from_bytes(data)
    best = results.best()
    if best is None:
        return None
    # On short Western European text charset-normalizer often ties cp1252 with
    # cp1250/cp1257 and picks the wrong one ("crèmes" -> "crčmes"). cp1252 is by
    # far the likelier legacy encoding of an office upload, so it wins ties.
    for match in results:
        if match.chaos > best.chaos + _TIE or match.coherence < best.coherence - _TIE:
            continue
        for encoding in _PREFERRED_ON_TIE:
            if encoding in match.could_be_from_charset:
                try:
                    return data.decode(encoding)
                except UnicodeDecodeError:
                    continue
    return str(best)


def _decode_probe(head: bytes) -> str | None:
    # The probe may end inside a multi-byte sequence; an incremental decoder
    # leaves the tail pending instead of calling the whole file non-UTF-8.
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
            try:
                return decoder.decode(head, final=False).lstrip("\ufeff")
            except UnicodeDecodeError:
                return None
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return _guess_decode(head)


def _sniff_zip(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            if "word/document.xml" in names:
                return "docx"
            # The main part may legally live elsewhere; [Content_Types].xml
            # names it either way.
            if "[Content_Types].xml" in names:
                info = archive.getinfo("[Content_Types].xml")
                # A real one is a few KB; a huge one is a zip bomb, not a DOCX.
                if info.file_size <= _MAX_CONTENT_TYPES:
                    content_types = archive.read(info)
                    if b"wordprocessingml.document.main+xml" in content_types:
                        return "docx"
    except (
        zipfile.BadZipFile,
        zlib.error,
        OSError,
        EOFError,
        ValueError,
        KeyError,
        NotImplementedError,
    ):
        # Hostile archives fail in any of these (NotImplementedError: an exotic
        # compression method); all mean "not a DOCX we can open".
        return "unknown"
    return "unknown"


def _is_binary(data: bytes) -> bool:
    if any(data.startswith(magic) for magic in _BINARY_MAGICS):
        return True
    # "MZ" alone is too short to trust (a text file may start with it); a real
    # DOS/PE header has NUL bytes right after it.
    if data.startswith(b"MZ") and b"\x00" in data[:64]:
        return True
    probe = data[:_TEXT_PROBE]
    # UTF-16/32 text is full of NULs; with a BOM it is still text.
    if any(probe.startswith(bom) for bom, _ in _BOMS):
        return False
    if b"\x00" in probe:
        return True
    non_text = sum(1 for byte in probe if byte in _NON_TEXT_BYTES)
    return non_text / len(probe) > _MAX_NON_TEXT_SHARE


def _sniff_text(text: str, declared: str | None) -> str:
    stripped = text.lstrip("\ufeff")
    if _HTML_START.match(stripped):
        return "html"
    head = stripped[:_HTML_PROBE]
    if _HTML_STRONG_TAG.search(head):
        return "html"
    if declared == "md":
        return "md"
    has_md_heading = _MD_HEADING.search(stripped) is not None
    if _HTML_WEAK_TAG.search(head) and not has_md_heading:
        return "html"
    if declared == "csv":
        return "csv" if _looks_like_csv(stripped, min_rows=2) else "txt"
    if has_md_heading:
        return "md"
    if _looks_like_csv(stripped, min_rows=3):
        return "csv"
    return "txt"


def _looks_like_csv(text: str, min_rows: int) -> bool:
    """True when the first lines parse with one consistent column count of at least 2."""
    lines = [line for line in text.splitlines() if line.strip()][:_CSV_PROBE_LINES]
    if len(lines) < min_rows:
        return False
    sample = "\n".join(lines)
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=_CSV_DELIMITERS)
        rows = list(csv.reader(io.StringIO(sample), dialect))
    except csv.Error:
        return False
    # The probe may cut a quoted multi-line field short; the last row is then
    # partial and says nothing about the column count.
    if len(lines) == _CSV_PROBE_LINES and len(rows) > min_rows:
        rows = rows[:-1]
    widths = {len(row) for row in rows}
    return len(rows) >= min_rows and len(widths) == 1 and widths.pop() >= 2
