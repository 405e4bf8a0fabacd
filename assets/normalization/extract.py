"""Extract page-addressed text from a document whose type is already known.

Structure that later stages rely on (headings, list items, table rows) is kept
as Markdown-like lines, so chunking can split on sections and citations can
point at a page. Scanned PDF pages are OCR'd with Tesseract and say so, with a
confidence. Every failure a caller should act on surfaces as ExtractionError
with a stable reason code; the corpus tests hold us to that.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import importlib
import io
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets.normalization.sniff import decode_text

if TYPE_CHECKING:
    from bs4 import BeautifulSoup, Tag
    from docx.table import Table
    from docx.text.paragraph import Paragraph


class _LazyModule:
    """A module imported on first use. Extraction workers are fresh processes, and the PDF,
    HTML and DOCX libraries cost ~0.3 s to import; a worker that only ever sees text files never
    pays it, nor does the run's own process, which imports this module for its types."""

    def __init__(self, name: str, load: Callable[[], Any] | None = None) -> None:
        self._name = name
        self._load = load or functools.partial(importlib.import_module, name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._load(), attribute)


# PyMuPDF imports its optional layout analyser (ONNX models, loaded at import) and pymupdf4llm
# when they are installed: ~0.75 s of the ~0.85 s `import pymupdf` costs. Only Page.get_layout
# and the Markdown export use them; text extraction (get_text, OCR) never does.
_PYMUPDF_OPTIONAL = ("pymupdf.layout", "pymupdf4llm")


@functools.cache
def load_pymupdf() -> Any:
    """pymupdf, imported without its layout analyser and pymupdf4llm when nothing has loaded
    them yet (imports of them later work as usual)."""
    if "pymupdf" in sys.modules:
        return sys.modules["pymupdf"]
    hidden = [name for name in _PYMUPDF_OPTIONAL if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        return importlib.import_module("pymupdf")
    finally:
        for name in hidden:
            del sys.modules[name]


pymupdf: Any = _LazyModule("pymupdf", load_pymupdf)
trafilatura: Any = _LazyModule("trafilatura")
docx: Any = _LazyModule("docx")


@dataclass(frozen=True)
class Page:
    """Text of one page; 1-based. Formats without pages yield a single page 1.

    `method` is "text" (the file's own text layer) or "ocr"; an OCR'd page carries
    `ocr_confidence` in 0..1 when it could be measured.
    """

    number: int
    text: str
    method: str = "text"
    ocr_confidence: float | None = None


@dataclass
class Extraction:
    pages: list[Page]
    # "text", "ocr" when every page with text was OCR'd, "mixed" when some were.
    method: str = "text"
    # title / author / created / modified when the format records them; created and
    # modified are ISO 8601 when parseable. PDF also reports unreadable_pages,
    # ocr_pages, ocr_failed_pages, ocr_rejected_pages (read below the confidence
    # floor, kept as they were) and ocr_unavailable ("1" when pages needed OCR
    # that no Tesseract could do); DOCX reports header and footer.
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n\n".join(page.text for page in self.pages if page.text.strip())


class ExtractionError(Exception):
    """Extraction failed for a reason the document's owner can be told about.

    `reason` is one of REASONS, stable for quarantine records and API responses.
    """

    REASONS = (
        "empty",
        "unsupported_type",
        "corrupt",
        "encrypted",
        "no_text",
        # Raised by isolated extraction (isolate.py): the worker ran out of time,
        # ran out of memory, or died.
        "timeout",
        "resource_limit",
        "crashed",
    )

    def __init__(self, reason: str, message: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown extraction failure reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message


def extract(
    data: bytes,
    doc_type: str,
    *,
    ocr: bool = True,
    ocr_language: str = "eng",
    ocr_min_chars: int = 25,
) -> Extraction:
    """Extract text from `data`, a document of `doc_type` (as sniff_type returns).

    PDF pages with fewer than `ocr_min_chars` readable characters that show an
    image (or show something but have no text at all) are OCR'd with Tesseract
    in `ocr_language` ("eng", "eng+deu", ...) unless `ocr` is False.

    Raises MemoryError when the document needs more memory than the process may
    have, so that isolated extraction can report it as a resource limit.
    """
    if not data:
        raise ExtractionError("empty", "the document is empty (0 bytes)")
    if doc_type == "pdf":
        if not _OCR_LANGUAGE.fullmatch(ocr_language):
            raise ValueError(f"invalid OCR language {ocr_language!r}")
        extraction = _extract_pdf(data, _OcrSettings(ocr, ocr_language, ocr_min_chars))
    else:
        extractor = _EXTRACTORS.get(doc_type)
        if extractor is None:
            raise ExtractionError(
                "unsupported_type", f"documents of type {doc_type!r} are not supported"
            )
        extraction = extractor(data)
    if not any(page.text.strip() for page in extraction.pages):
        if extraction.metadata.get("ocr_unavailable"):
            raise ExtractionError(
                "no_text",
                "the document contains no extractable text; its scanned pages need OCR, "
                "which is not available",
            )
        raise ExtractionError("no_text", "the document contains no extractable text")
    return extraction


# MuPDF reports a failed allocation as FzErrorSystem("malloc (N bytes) failed"),
# and a MemoryError in one of pymupdf's Python callbacks as a "Director error".
_OUT_OF_MEMORY = re.compile(
    r"\b(?:malloc|calloc|realloc)\b.*\bfailed\b|out of memory|\bMemoryError\b", re.I
)


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or bool(_OUT_OF_MEMORY.search(str(exc)))


# --- PDF ---------------------------------------------------------------------


@dataclass(frozen=True)
class _OcrSettings:
    enabled: bool
    language: str
    min_chars: int


def _extract_pdf(data: bytes, ocr: _OcrSettings) -> Extraction:
    # MuPDF reports broken files through several exception types, at open and
    # at any document-level call after it (page tree, metadata); all are "corrupt",
    # except running out of memory, which says nothing about the file.
    try:
        document = pymupdf.open(stream=data, filetype="pdf")
    except Exception as exc:
        if _out_of_memory(exc):
            raise MemoryError(f"the PDF cannot be opened: {exc}") from exc
        raise ExtractionError("corrupt", f"the PDF cannot be opened: {exc}") from exc
    try:
        return _read_pdf(document, ocr)
    except (ExtractionError, MemoryError):
        raise
    except Exception as exc:
        if _out_of_memory(exc):
            raise MemoryError(f"the PDF cannot be read: {exc}") from exc
        raise ExtractionError("corrupt", f"the PDF cannot be read: {exc}") from exc
    finally:
        document.close()


def _read_pdf(document: pymupdf.Document, ocr: _OcrSettings) -> Extraction:
    # MuPDF already tries the empty user password on open; this covers builds
    # that do not, and leaves needs_pass set only for real passwords.
    if document.needs_pass and not document.authenticate(""):
        raise ExtractionError("encrypted", "the PDF is protected by a password")
    page_count = document.page_count
    if page_count == 0:
        raise ExtractionError("corrupt", "the PDF has no readable pages")
    pages: list[Page] = []
    unreadable: list[int] = []
    ocr_failed: list[int] = []
    ocr_rejected: list[int] = []
    # Looked up when the first page needs OCR; "" once found missing.
    tessdata: str | None = None
    for index in range(page_count):
        number = index + 1
        try:
            page = document.load_page(index)
            text = _pdf_page_text(page)
        except Exception as exc:  # One broken page must not cost the rest of the document.
            if _out_of_memory(exc):
                raise
            pages.append(Page(number=number, text=""))
            unreadable.append(number)
            continue
        if ocr.enabled and tessdata != "" and _needs_ocr(page, text, ocr.min_chars):
            tessdata = tessdata or _tessdata(ocr.language) or ""
        else:
            pages.append(Page(number=number, text=text))
            continue
        try:
            ocr_text, confidence = (
                _ocr_page(page, ocr.language, tessdata) if tessdata else ("", None)
            )
        except Exception as exc:
            if _out_of_memory(exc):
                raise
            ocr_text, confidence = "", None
            ocr_failed.append(number)
        if not _OCR_WORD.search(ocr_text) or _readable_chars(ocr_text) <= _readable_chars(text):
            pages.append(Page(number=number, text=text))
        elif confidence is not None and confidence < _OCR_MIN_CONFIDENCE:
            pages.append(Page(number=number, text=text))
            ocr_rejected.append(number)
        else:
            pages.append(Page(number, ocr_text, method="ocr", ocr_confidence=confidence))
    metadata = _pdf_metadata(document.metadata or {})
    if unreadable:
        metadata["unreadable_pages"] = _page_list(unreadable)
    ocr_pages = [page.number for page in pages if page.method == "ocr"]
    if ocr_pages:
        metadata["ocr_pages"] = _page_list(ocr_pages)
    if ocr_failed:
        metadata["ocr_failed_pages"] = _page_list(ocr_failed)
    if ocr_rejected:
        metadata["ocr_rejected_pages"] = _page_list(ocr_rejected)
    if tessdata == "":
        metadata["ocr_unavailable"] = "1"
    return Extraction(pages=pages, method=_pdf_method(pages), metadata=metadata)


# --- PDF layout: headings by font, paragraphs unwrapped -------------------------

# MuPDF span flags.
_SUPERSCRIPT, _MONOSPACED, _BOLD = 1, 8, 16
# A line in a font this much larger than the page's body text is a heading.
_HEADING_RATIOS = ((1.6, 1), (1.35, 2), (1.15, 3))
_HEADING_MAX_CHARS = 120
_SECTION_NUMBER = re.compile(r"^(?:\d+(?:\.\d+){0,4}|[A-Z](?:\.\d+){1,4})\.?\s+\S")
_SENTENCE_END = re.compile(r"[.:;!?)\]\"'\u201d]$")


@dataclass
class _PdfLine:
    text: str
    size: float
    bold: bool
    mono: bool
    x0: float
    x1: float


def _pdf_lines(block: dict[str, Any]) -> list[_PdfLine]:
    lines = []
    for line in block.get("lines", []):
        parts: list[str] = []
        sizes: list[tuple[float, int]] = []
        bold = mono = True
        for span in line.get("spans", []):
            text = span.get("text", "")
            if not text:
                continue
            flags = int(span.get("flags", 0))
            if (
                flags & _SUPERSCRIPT
                and text.strip().isdigit()
                and parts
                and parts[-1][-1:].isalpha()
            ):
                continue  # a footnote mark glued to the word before it ("option7")
            parts.append(text)
            if text.strip():
                sizes.append((float(span.get("size", 0.0)), len(text.strip())))
                bold = bold and bool(flags & _BOLD)
                mono = mono and bool(flags & _MONOSPACED)
        text = "".join(parts)
        if not text.strip():
            continue
        size = max(sizes, key=lambda s: s[1])[0] if sizes else 0.0
        x0, _, x1, _ = line.get("bbox", (0.0, 0.0, 0.0, 0.0))
        lines.append(_PdfLine(text.strip(), size, bold, mono, float(x0), float(x1)))
    return lines


def _body_size(blocks: list[list[_PdfLine]]) -> float:
    """The font size most of the page's characters are set in."""
    weight: dict[float, int] = {}
    for lines in blocks:
        for line in lines:
            key = round(line.size * 2) / 2
            weight[key] = weight.get(key, 0) + len(line.text)
    return max(weight, key=lambda k: weight[k]) if weight else 0.0


def _heading_level(lines: list[_PdfLine], body: float) -> int | None:
    """The heading level of a block (None: not a heading): short, and in a larger font than
    the body text or bold; numbered sections ("2.6.1 Multilib") take their depth."""
    text = " ".join(line.text for line in lines)
    if len(lines) > 2 or len(text) > _HEADING_MAX_CHARS or not any(c.isalpha() for c in text):
        return None
    size = max(line.size for line in lines)
    level = next((lvl for ratio, lvl in _HEADING_RATIOS if body and size >= ratio * body), None)
    if level is None:
        if not all(line.bold for line in lines) or text.endswith(".") or len(text) > 80:
            return None
        level = 4
    numbered = _SECTION_NUMBER.match(text)
    if numbered:
        level = min(6, numbered.group(0).count(".") + 1)
    return level


def _pdf_paragraphs(lines: list[_PdfLine], body: float) -> list[str]:
    """A text block's lines joined into paragraphs as a reader sees them: a line that ends
    short of the block's width at a sentence end, or an indented first line, starts a new one;
    monospaced lines (code) keep their breaks."""
    right = max(line.x1 for line in lines)
    left = min(line.x0 for line in lines)
    indent = max(body, 4.0) * 0.8
    paragraphs: list[str] = []
    current = ""
    previous: _PdfLine | None = None
    for line in lines:
        if previous is None:
            current = line.text
        else:
            ended = previous.x1 < right - 2 * max(body, 4.0) and bool(
                _SENTENCE_END.search(previous.text)
            )
            indented = line.x0 > left + indent and previous.x0 <= left + indent
            if line.mono and previous.mono:
                current += "\n" + line.text
            elif ended or indented or line.mono != previous.mono:
                paragraphs.append(current)
                current = line.text
            elif current.endswith("-"):
                current += "\n" + line.text  # normalize_text undoes end-of-line hyphenation
            else:
                current += " " + line.text
        previous = line
    if current:
        paragraphs.append(current)
    return paragraphs


def _pdf_page_text(page: pymupdf.Page) -> str:
    """A page's text in reading order: headings marked as Markdown headings (by font size,
    weight and section numbers), paragraphs unwrapped, blocks apart by a blank line."""
    raw = page.get_text("dict", sort=True, flags=pymupdf.TEXTFLAGS_TEXT)
    blocks = [_pdf_lines(b) for b in raw.get("blocks", []) if b.get("type", 0) == 0]
    blocks = [lines for lines in blocks if lines]
    body = _body_size(blocks)
    out: list[str] = []
    last_level = 3
    for i, lines in enumerate(blocks):
        level = _heading_level(lines, body)
        if level is not None:
            last_level = level
            out.append("#" * level + " " + " ".join(line.text for line in lines))
        elif _pdf_term(lines, blocks[i + 1] if i + 1 < len(blocks) else None):
            # An option or a name in code type above its indented description: an entry of a
            # definition list, a heading of its own as <dt> is in HTML.
            out.append("#" * min(6, last_level + 1) + " " + ", ".join(x.text for x in lines))
        else:
            out.extend(_pdf_paragraphs(lines, body))
    return "\n\n".join(out)


_TERM_MAX_CHARS = 60


def _pdf_term(lines: list[_PdfLine], following: list[_PdfLine] | None) -> bool:
    """A short block of monospaced lines whose next block is indented past it: a term."""
    if not following or len(lines) > 4 or not all(line.mono for line in lines):
        return False
    if any(len(line.text) > _TERM_MAX_CHARS for line in lines):
        return False
    return min(x.x0 for x in following) > min(x.x0 for x in lines) + 8


def _page_list(numbers: list[int]) -> str:
    return ",".join(str(number) for number in numbers)


def _pdf_method(pages: list[Page]) -> str:
    if not any(page.method == "ocr" for page in pages):
        return "text"
    if any(page.method == "text" and page.text.strip() for page in pages):
        return "mixed"
    return "ocr"


# --- OCR -----------------------------------------------------------------------

_OCR_LANGUAGE = re.compile(r"[A-Za-z_]+(?:\+[A-Za-z_]+)*")
_OCR_DPI = 300
# A3 at 300 dpi is 17 megapixels; larger pages (posters, drawings, hostile
# MediaBoxes) are OCR'd at a lower resolution instead of exhausting memory.
_OCR_MAX_PIXELS = 25_000_000
# Tesseract parallelises one page with OpenMP; on a busy machine that makes it
# several times slower than one thread (1.9 s against 0.4 s for a page here).
_OCR_ENV = {"OMP_THREAD_LIMIT": "1"}
_OCR_CONFIDENCE_TIMEOUT_S = 120
# Tesseract reads rules, boxes and specks as "=", "|" or "~"; OCR output with
# no word of two letters or digits is not text.
_OCR_WORD = re.compile(r"[^\W_]{2,}")
# Over the pdf.js corpus, photos, halftones and patterns came out as "ee tT
# Hibs eee" at 0.05-0.41, real text (small, stamped, logos) mostly at 0.7-0.96.
# Junk would be worse than nothing in a training set.
_OCR_MIN_CONFIDENCE = 0.45


def _readable_chars(text: str) -> int:
    # U+FFFD is what MuPDF emits for glyphs whose font maps to no character.
    return sum(1 for ch in text if ch.isprintable() and not ch.isspace() and ch != "\ufffd")


def _needs_ocr(page: pymupdf.Page, text: str, min_chars: int) -> bool:
    readable = _readable_chars(text)
    if readable >= min_chars:
        return False
    try:
        # A short text page without images (a cover, a divider) is what it seems;
        # a page with no text at all may still show text drawn as vector paths,
        # and one with unmapped glyphs (U+FFFD) text we cannot read otherwise.
        if readable and "\ufffd" not in text and not page.get_image_info():
            return False
        # A blank page needs no OCR; a thumbnail tells.
        return not page.get_pixmap(dpi=20, colorspace=pymupdf.csGRAY).is_unicolor
    except Exception as exc:
        if _out_of_memory(exc):
            raise
        return False  # what cannot be rendered cannot be OCR'd either


def _tessdata(language: str) -> str | None:
    """The Tesseract data folder holding every language in `language`, or None."""
    return _find_tessdata(os.environ.get("TESSDATA_PREFIX") or None, language)


@functools.lru_cache(maxsize=16)
def _find_tessdata(prefix: str | None, language: str) -> str | None:
    try:
        # Without a prefix this asks the tesseract binary; hence the cache.
        folder = Path(pymupdf.get_tessdata(prefix))
    except Exception:
        return None
    if all((folder / f"{name}.traineddata").is_file() for name in language.split("+")):
        return str(folder)
    return None


def _ocr_dpi(rect: pymupdf.Rect) -> int:
    square_inches = max(rect.width * rect.height / (72 * 72), 1e-6)
    return max(min(_OCR_DPI, int(math.sqrt(_OCR_MAX_PIXELS / square_inches))), 1)


def _ocr_page(page: pymupdf.Page, language: str, tessdata: str) -> tuple[str, float | None]:
    """OCR a whole page: its text from MuPDF's Tesseract, and a confidence.

    MuPDF's OCR text layer carries no confidences, so the tesseract command
    line reads the same rendering (same resolution, language data and page
    segmentation) at the same time, and the confidence is its mean word
    confidence weighted by word length. None when there is no tesseract binary
    or it fails.
    """
    dpi = _ocr_dpi(page.rect)
    with tempfile.TemporaryDirectory(prefix="privatune-ocr-") as folder:
        scoring = _start_confidence(page, dpi, language, tessdata, Path(folder))
        try:
            textpage = page.get_textpage_ocr(
                language=language, dpi=dpi, full=True, tessdata=tessdata
            )
            text = page.get_text("text", textpage=textpage, sort=True)
        except BaseException:
            if scoring is not None:
                scoring.kill()
                scoring.wait()
            raise
        return text, _finish_confidence(scoring)


@functools.cache
def _tesseract_binary() -> str | None:
    return shutil.which("tesseract")


def _start_confidence(
    page: pymupdf.Page, dpi: int, language: str, tessdata: str, folder: Path
) -> subprocess.Popen[bytes] | None:
    binary = _tesseract_binary()
    if binary is None:
        return None
    image = folder / "page.png"
    # The very rendering get_textpage_ocr makes, so both engines read the same pixels.
    page.get_pixmap(dpi=dpi).save(str(image))
    command = [binary, str(image), "-", "--tessdata-dir", tessdata, "-l", language]
    try:
        return subprocess.Popen(
            # --psm 6 (one uniform block) is what MuPDF's Tesseract runs with; the
            # command line's default layout analysis would read a different text.
            [*command, "--dpi", str(dpi), "--psm", "6", "tsv"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **_OCR_ENV},
        )
    except OSError:
        return None


def _finish_confidence(scoring: subprocess.Popen[bytes] | None) -> float | None:
    if scoring is None:
        return None
    try:
        output, _ = scoring.communicate(timeout=_OCR_CONFIDENCE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        scoring.kill()
        scoring.wait()
        return None
    if scoring.returncode != 0:
        return None
    return _tsv_confidence(output.decode("utf-8", "replace"))


def _tsv_confidence(tsv: str) -> float:
    """Length-weighted mean confidence (0..1) of the words in Tesseract's TSV output."""
    weighted = total = 0.0
    for line in tsv.splitlines()[1:]:
        columns = line.split("\t")
        # level, page, block, paragraph, line, word, left, top, width, height, conf, text
        if len(columns) < 12 or columns[0] != "5" or not columns[11].strip():
            continue
        try:
            confidence = float(columns[10])
        except ValueError:
            continue
        if confidence < 0:
            continue
        length = len(columns[11].strip())
        weighted += min(confidence, 100.0) / 100 * length
        total += length
    # The same pixels read the same way with not one word found: MuPDF's words
    # are unconfirmed noise.
    return round(weighted / total, 4) if total else 0.0


_PDF_DATE = re.compile(
    r"^D?:?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?\s*(?:([Zz])|([+-])(\d{2})'?(\d{2})?'?)?"
)


def _pdf_date(value: str) -> str:
    """PDF date ("D:20240102030405+01'00'") as ISO 8601; the raw value if unparseable."""
    match = _PDF_DATE.match(value.strip())
    if not match:
        return value
    year, month, day, hour, minute, second, zulu, sign, tz_hours, tz_minutes = match.groups()
    tzinfo: dt.tzinfo | None = None
    if zulu:
        tzinfo = dt.UTC
    elif sign:
        offset = dt.timedelta(hours=int(tz_hours), minutes=int(tz_minutes or 0))
        tzinfo = dt.timezone(-offset if sign == "-" else offset)
    try:
        parsed = dt.datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=tzinfo,
        )
    except ValueError:
        return value
    return parsed.isoformat()


def _pdf_metadata(raw: dict[str, Any]) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for source, target in (("title", "title"), ("author", "author")):
        value = raw.get(source)
        if isinstance(value, str) and value.strip():
            metadata[target] = value.strip()
    for source, target in (("creationDate", "created"), ("modDate", "modified")):
        value = raw.get(source)
        if isinstance(value, str) and value.strip():
            metadata[target] = _pdf_date(value)
    return metadata


# --- shared block rendering ----------------------------------------------------

# A block is (kind, text); list items and table rows sit on consecutive lines,
# everything else is separated by a blank line, as in Markdown.
_Block = tuple[str, str]
_LINE_KINDS = frozenset({"item", "row"})


def _join_blocks(blocks: Iterable[_Block]) -> str:
    parts: list[str] = []
    previous_kind = ""
    for kind, text in blocks:
        if parts:
            tight = kind == previous_kind and kind in _LINE_KINDS
            parts.append("\n" if tight else "\n\n")
        parts.append(text)
        previous_kind = kind
    return "".join(parts)


def _table_lines(rows: list[list[str]]) -> list[str]:
    """Render a table as one line per data row: "header: value; header: value".

    A row of cells means little to a language model without its column names, so
    every value carries its header. A table with a single row has no header to use.
    """
    rows = [[" ".join(cell.split()) for cell in row] for row in rows]
    rows = [row for row in rows if any(row)]
    if not rows:
        return []
    if len(rows) == 1:
        return ["; ".join(cell for cell in rows[0] if cell)]
    header, *body = rows
    lines: list[str] = []
    for row in body:
        pairs = []
        for index, value in enumerate(row):
            if not value:
                continue
            name = header[index] if index < len(header) else ""
            pairs.append(f"{name}: {value}" if name and name != value else value)
        if pairs:
            lines.append("; ".join(pairs))
    return lines


# --- DOCX ----------------------------------------------------------------------

_HEADING_STYLE = re.compile(r"^heading\s+(\d)$", re.IGNORECASE)


def _extract_docx(data: bytes) -> Extraction:
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(_docx_blocks(document.iter_inner_content()))
        metadata = _docx_metadata(document)
    except MemoryError:
        raise
    except Exception as exc:
        # python-docx lets zipfile, lxml and its own package reader raise whatever
        # they raise on a malformed package; to the caller they all mean "corrupt".
        raise ExtractionError("corrupt", f"the DOCX cannot be read: {exc}") from exc
    metadata.update(_docx_headers_footers(document))
    return Extraction(pages=[Page(number=1, text=_join_blocks(blocks))], metadata=metadata)


# Enough for a letterhead or a classification line; a header holding pages of
# text is not a header we want in a metadata record.
_DOCX_HEADER_MAX_CHARS = 2000


def _docx_headers_footers(document: Any) -> dict[str, str]:
    """Distinct header and footer texts of all sections, as metadata.

    Word repeats them on every page, so in the body text they would land in
    every chunk cut from it (or in one chunk of pure boilerplate); as metadata
    the document record keeps them without training on them.
    """
    found: dict[str, list[str]] = {"header": [], "footer": []}
    try:
        for section in document.sections:
            for kind, parts in (
                ("header", (section.header, section.first_page_header, section.even_page_header)),
                ("footer", (section.footer, section.first_page_footer, section.even_page_footer)),
            ):
                for part in parts:
                    # Linked: the previous section's, already seen, or none at all.
                    if part.is_linked_to_previous:
                        continue
                    text = _join_blocks(_docx_blocks(part.iter_inner_content()))
                    if text and text not in found[kind]:
                        found[kind].append(text)
    except MemoryError:
        raise
    except Exception:
        return {}  # a broken header part must not cost the body text
    return {
        kind: "\n".join(texts)[:_DOCX_HEADER_MAX_CHARS] for kind, texts in found.items() if texts
    }


def _docx_blocks(content: Iterable[Paragraph | Table]) -> Iterable[_Block]:
    from docx.table import Table

    for item in content:
        if isinstance(item, Table):
            rows = [_docx_row_cells(row, header=index == 0) for index, row in enumerate(item.rows)]
            for line in _table_lines(rows):
                yield ("row", line)
            continue
        text = item.text.strip()
        if not text:
            continue
        style_name = _docx_style_name(item)
        heading = _HEADING_STYLE.match(style_name)
        if heading:
            level = min(max(int(heading.group(1)), 1), 6)
            yield ("heading", f"{'#' * level} {' '.join(text.split())}")
        elif style_name.lower() == "title":
            yield ("heading", f"# {' '.join(text.split())}")
        elif style_name.lower().startswith("list") or _docx_is_numbered(item):
            yield ("item", f"- {' '.join(text.split())}")
        else:
            yield ("paragraph", text)


def _docx_row_cells(row: Any, header: bool) -> list[str]:
    # A horizontally merged cell comes back once per grid column it spans. Keep
    # one entry per column so values stay under their headers: a merged header
    # names every column it spans, a merged value is stated once.
    cells: list[str] = []
    previous = None
    for cell in row.cells:
        cells.append("" if cell._tc is previous and not header else cell.text)
        previous = cell._tc
    return cells


def _docx_style_name(paragraph: Paragraph) -> str:
    style = paragraph.style
    return (style.name or "") if style is not None else ""


def _docx_is_numbered(paragraph: Paragraph) -> bool:
    p_pr = paragraph._p.pPr
    return p_pr is not None and p_pr.numPr is not None


def _docx_metadata(document: Any) -> dict[str, str]:
    # python-docx invents core properties (title "Word Document", modified now)
    # when the package has none; report only what the file itself records.
    from docx.opc.constants import RELATIONSHIP_TYPE as RT

    try:
        document.part.package.part_related_by(RT.CORE_PROPERTIES)
    except KeyError:
        return {}
    properties = document.core_properties
    metadata: dict[str, str] = {}
    for name, value in (("title", properties.title), ("author", properties.author)):
        if value and value.strip():
            metadata[name] = value.strip()
    for name, value in (("created", properties.created), ("modified", properties.modified)):
        if isinstance(value, dt.datetime):
            metadata[name] = value.isoformat()
    return metadata


# --- HTML ----------------------------------------------------------------------

_HTML_DROP = ("script", "style", "nav", "header", "footer", "aside", "form", "noscript", "template")
_HTML_DROP_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "complementary"})
# Navigation bars that generated manuals mark only by class: DocBook (navheader, navfooter),
# Texinfo (nav-panel), Sphinx (sphinxsidebar), and common site themes.
_HTML_DROP_CLASSES = frozenset(
    {
        "navheader",
        "navfooter",
        "nav-panel",
        "navbar",
        "navigation",
        "breadcrumb",
        "breadcrumbs",
        "sphinxsidebar",
        "skip-link",
    }
)
_HTML_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_HTML_BLOCKS = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "body",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "hr",
        "main",
        "p",
        "section",
        "summary",
    }
)


# Below this many words trafilatura's statistics have too little to go on: it
# falls back to its baseline, which keeps menus and forms as one flat paragraph.
_HTML_MIN_MAIN_WORDS = 50


def _extract_html(data: bytes) -> Extraction:
    import warnings

    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning

    # Bytes, not decoded text, so BeautifulSoup can honour <meta charset>. XHTML pages
    # (<?xml ...?> first) are HTML to a browser too: the HTML parser reads them as one would.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(data, "lxml")
    metadata: dict[str, str] = {}
    if soup.title is not None:
        title = " ".join(soup.title.get_text(" ").split())
        if title:
            metadata["title"] = title
    _drop_boilerplate(soup)
    text = _html_main_content(soup)
    if text is None:
        text = _html_render_semantic(soup)
    return Extraction(pages=[Page(number=1, text=text)], metadata=metadata)


def _html_main_content(soup: BeautifulSoup) -> str | None:
    """The main content as trafilatura finds it, rendered from the page's own markup.

    Markup already drops what says it is chrome (nav, header, footer, ARIA roles);
    trafilatura's heuristics find the rest (cookie banners, share bars, related
    links, menus built from divs). Its own HTML output loses structure (definition
    lists become flat lists, inline code becomes <pre> blocks), so the main content
    it found is located in the original tree and that part is rendered; only when
    it cannot be located is trafilatura's output rendered instead.
    None when trafilatura finds too little to trust.
    """
    for header in soup.find_all("header"):
        # Kept by _drop_boilerplate because it holds an article's title, which
        # trafilatura would drop with any other <header>.
        header.name = "div"
    try:
        html = trafilatura.extract(
            str(soup),
            output_format="html",
            favor_precision=True,
            include_comments=False,
            include_tables=True,
        )
    except Exception:  # a heuristic failing is no reason to lose the page
        return None
    if not html:
        return None
    from bs4 import BeautifulSoup

    body = BeautifulSoup(html, "lxml").body
    if body is None:
        return None
    main_words = body.get_text(" ").split()
    if len(main_words) < _HTML_MIN_MAIN_WORDS:
        return None
    renderer = _HtmlRenderer()
    located = _locate_content(soup, main_words)
    if located is not None:
        renderer.walk_nodes(located)
    else:
        renderer.walk(body)
    renderer.flush()
    text = _join_blocks(renderer.blocks)
    if len(text.split()) < _HTML_MIN_MAIN_WORDS:
        return None
    return text


# Words of trafilatura's main text that must be found, in order, in the original tree.
_ANCHOR_WORDS = (12, 8, 5)


def _locate_content(soup: BeautifulSoup, main_words: list[str]) -> list[Any] | None:
    """The run of sibling nodes in `soup` that spans trafilatura's main text: from the node
    holding its first words to the one holding its last, cut at their lowest common
    ancestor. Text is compared without whitespace, so markup that splits or joins words
    differently does not matter. None when either end cannot be found."""
    from bs4 import NavigableString
    from bs4.element import PreformattedString

    root = soup.body or soup
    nodes: list[Any] = []
    ends: list[int] = []
    parts: list[str] = []
    length = 0
    for node in root.descendants:
        if isinstance(node, NavigableString) and not isinstance(node, PreformattedString):
            squeezed = "".join(str(node).split())
            if squeezed:
                parts.append(squeezed)
                length += len(squeezed)
                nodes.append(node)
                ends.append(length)
    full = "".join(parts)
    # trafilatura may drop a passage inside what it keeps, so an anchor of many words can
    # straddle the gap: fewer words are tried before giving up.
    start = stop = -1
    head = tail = ""
    for n in _ANCHOR_WORDS:
        head = "".join(main_words[:n])
        start = full.find(head)
        if start >= 0:
            break
    if start < 0:
        return None
    for n in _ANCHOR_WORDS:
        tail = "".join(main_words[-n:])
        stop = full.rfind(tail)
        if stop >= start:
            break
    if stop < start:
        return None
    import bisect

    first = nodes[bisect.bisect_right(ends, start)]
    last = nodes[bisect.bisect_right(ends, stop + len(tail) - 1)]
    first_chain = [first, *first.parents]
    last_ancestors = {id(node) for node in [last, *last.parents]}
    common = next((node for node in first_chain if id(node) in last_ancestors), None)
    if common is None:
        return None
    if common is first:  # both ends in one text node
        return [common]
    children = list(common.children)

    def child_holding(node: Any) -> int:
        chain = {id(n) for n in [node, *node.parents]}
        return next(i for i, child in enumerate(children) if id(child) in chain)

    start = child_holding(first)
    # trafilatura leaves out a section's own title: take the heading just before the main
    # text back in (past empty anchors and rules).
    for j in range(start - 1, -1, -1):
        sibling = children[j]
        if getattr(sibling, "name", None) in _HTML_HEADINGS:
            start = j
            break
        if sibling.get_text().strip():
            break
    return children[start : child_holding(last) + 1]


def _html_render_semantic(soup: BeautifulSoup) -> str:
    """The page's <main>, its top-level <article>s, or else its body, rendered."""
    from bs4 import Tag

    roots: list[Tag] = []
    main = soup.find("main")
    if isinstance(main, Tag):
        roots = [main]
    else:
        roots = [tag for tag in soup.find_all("article") if tag.find_parent("article") is None]
    if not roots:
        body = soup.body
        roots = [body] if body is not None else [soup]
    renderer = _HtmlRenderer()
    for root in roots:
        renderer.walk(root)
        renderer.flush()
    return _join_blocks(renderer.blocks)


def _drop_boilerplate(soup: BeautifulSoup) -> None:
    doomed: list[Tag] = []
    for tag in soup.find_all(True):
        if tag.name in _HTML_DROP:
            # An <article>'s own <header> holds its title and byline, not site chrome.
            if tag.name == "header" and tag.find_parent("article") is not None:
                continue
            # ASP.NET WebForms pages wrap the whole body in one <form>.
            if tag.name == "form" and tag.find(["main", "article", "h1", "h2"]) is not None:
                continue
            doomed.append(tag)
        elif (
            str(tag.get("role", "")).lower() in _HTML_DROP_ROLES
            or tag.has_attr("hidden")
            or _HTML_DROP_CLASSES.intersection(str(c).lower() for c in tag.get("class") or ())
        ):
            doomed.append(tag)
    for tag in doomed:
        # A tag inside one already removed is gone with it.
        if not tag.decomposed:
            tag.decompose()


# Elements inside which a one-line <pre> is inline code (trafilatura's output turns <code>
# into <pre>).
_HTML_TEXT_PARENTS = frozenset({"p", "li", "td", "th", "dd", "dt", "span", "a", "em", "strong"})
_WHITESPACE = re.compile(r"\s+")


# Permalink anchors (Sphinx's headerlink, Texinfo's copiable-anchor) show only a symbol.
_PERMALINK_TEXT = frozenset({"¶", "§", "#", "🔗"})


def _is_permalink(tag: Tag) -> bool:
    return (
        tag.name == "a"
        and str(tag.get("href", "")).startswith("#")
        and tag.get_text().strip() in _PERMALINK_TEXT
    )


def _inline_text(tag: Tag) -> str:
    """A tag's text on one line, as a browser shows it (markup adds no spaces of its own),
    without permalink symbols."""
    from bs4 import NavigableString

    parts = [
        str(node)
        for node in tag.descendants
        if isinstance(node, NavigableString)
        and not any(_is_permalink(parent) for parent in node.parents if parent is not tag)
    ]
    return " ".join(_WHITESPACE.sub(" ", "".join(parts)).split())


class _HtmlRenderer:
    """Turn an HTML subtree into Markdown-like blocks. Whitespace in text collapses as in a
    browser (only <br> breaks a line); a definition list's terms (<dt>) become headings one
    level below the section they are in, so each entry is a section of its own that chunks
    and citations can name."""

    def __init__(self) -> None:
        self.blocks: list[_Block] = []
        self._inline: list[str] = []
        self._item_prefix: str | None = None
        self._list_depth = 0
        self._heading_level = 0
        self._dl_depth = 0
        self._term_block: int | None = (
            None  # index of the last <dt> heading, while no text followed
        )

    def flush(self) -> None:
        lines = [" ".join(line.split()) for line in "".join(self._inline).split("\n")]
        text = "\n".join(line for line in lines if line)
        self._inline.clear()
        if self._item_prefix is not None:
            if text:
                self._add("item", self._item_prefix + text)
                # Text after a nested list still belongs to the item but gets no bullet.
                self._item_prefix = None
            return
        if text:
            self._add("paragraph", text)

    def _add(self, kind: str, text: str) -> None:
        self.blocks.append((kind, text))
        self._term_block = None

    def walk(self, root: Tag) -> None:
        self.walk_nodes(list(root.contents))

    def walk_nodes(self, nodes: list[Any]) -> None:
        from bs4 import NavigableString, Tag
        from bs4.element import PreformattedString

        # An explicit stack, not recursion: hostile pages nest thousands deep.
        stack: list[tuple[bool, Any]] = [(False, node) for node in reversed(nodes)]
        while stack:
            leaving, node = stack.pop()
            if leaving:
                self._leave(node)
            elif isinstance(node, PreformattedString):
                continue  # comments, doctype, CDATA, processing instructions
            elif isinstance(node, NavigableString):
                self._inline.append(_WHITESPACE.sub(" ", str(node)))
            elif isinstance(node, Tag) and self._enter(node):
                stack.append((True, node))
                stack.extend((False, child) for child in reversed(node.contents))

    def _enter(self, tag: Tag) -> bool:
        """Handle an opening tag; True when its children are still to be walked."""
        name = tag.name
        if _is_permalink(tag):
            return False
        if name in _HTML_HEADINGS:
            self.flush()
            text = _inline_text(tag)
            if text:
                self._heading_level = _HTML_HEADINGS[name]
                self._add("heading", f"{'#' * self._heading_level} {text}")
            return False
        if name == "dt":
            self.flush()
            # Texinfo puts an empty category before the name (": intmax (type)").
            text = _inline_text(tag).lstrip(":;,. ")
            if not text:
                return False
            if self._term_block is not None:
                # Several terms for one description (-f / --force): one heading names them all.
                kind, previous = self.blocks[self._term_block]
                self.blocks[self._term_block] = (kind, f"{previous}, {text}")
                return False
            level = min(6, self._heading_level + max(self._dl_depth, 1))
            self._add("heading", f"{'#' * level} {text}")
            self._term_block = len(self.blocks) - 1
            return False
        if name == "br":
            self._inline.append("\n")
            return False
        if name == "table":
            self.flush()
            for line in _table_lines(_html_table_rows(tag)):
                self._add("row", line)
            return False
        if name == "pre":
            text = tag.get_text().strip("\n")
            parent = tag.parent.name if tag.parent is not None else ""
            if "\n" not in text and parent in _HTML_TEXT_PARENTS:
                self._inline.append(text)
                return False
            self.flush()
            if text.strip():
                self._add("paragraph", text)
            return False
        if name in ("ul", "ol"):
            self.flush()
            self._list_depth += 1
        elif name == "li":
            self.flush()
            self._item_prefix = "  " * max(self._list_depth - 1, 0) + "- "
        elif name == "dl":
            self.flush()
            self._dl_depth += 1
        elif name in _HTML_BLOCKS:
            self.flush()
        return True

    def _leave(self, tag: Tag) -> None:
        name = tag.name
        if name in ("ul", "ol"):
            self.flush()
            self._list_depth -= 1
        elif name == "li":
            self.flush()
            self._item_prefix = None
        elif name == "dl":
            self.flush()
            self._dl_depth -= 1
        elif name in _HTML_BLOCKS:
            self.flush()


def _html_table_rows(table: Tag) -> list[list[str]]:
    rows: list[list[str]] = []
    for row in table.find_all("tr"):
        if row.find_parent("table") is not table:
            continue  # a nested table's row; its own table renders it
        cells: list[str] = []
        for cell in row.find_all(["td", "th"], recursive=False):
            span = _html_span(cell)
            text = cell.get_text(" ")
            # Keep columns aligned under colspan: a header names every column it
            # spans, a value is stated once.
            cells.extend([text] * span if not rows else [text] + [""] * (span - 1))
        rows.append(cells)
    return rows


def _html_span(cell: Tag) -> int:
    try:
        return min(max(int(str(cell.get("colspan", "1"))), 1), 100)
    except ValueError:
        return 1


# --- plain text formats ------------------------------------------------------------


def _decoded(data: bytes) -> str:
    text = decode_text(data)
    if text is None:
        raise ExtractionError("corrupt", "the document is not text in any recognised encoding")
    return text


def _extract_plain(data: bytes) -> Extraction:
    return Extraction(pages=[Page(number=1, text=_decoded(data))])


_CSV_SNIFF_SAMPLE = 64 * 1024


def _extract_csv(data: bytes) -> Extraction:
    text = _decoded(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:_CSV_SNIFF_SAMPLE], delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), dialect))
    except csv.Error as exc:
        raise ExtractionError("corrupt", f"the CSV cannot be parsed: {exc}") from exc
    if not rows:
        return Extraction(pages=[Page(number=1, text="")])
    header = [" ".join(name.split()) for name in rows[0]]
    lines: list[str] = []
    for row in rows[1:]:
        pairs = []
        for index, raw in enumerate(row):
            value = " ".join(raw.split())
            if not value:
                continue
            name = header[index] if index < len(header) and header[index] else f"column {index + 1}"
            pairs.append(f"{name}: {value}")
        if pairs:
            lines.append("; ".join(pairs))
    return Extraction(pages=[Page(number=1, text="\n".join(lines))])


_EXTRACTORS: dict[str, Callable[[bytes], Extraction]] = {
    "pdf": _extract_pdf,
    "docx": _extract_docx,
    "html": _extract_html,
    "md": _extract_plain,
    "txt": _extract_plain,
    "csv": _extract_csv,
}
