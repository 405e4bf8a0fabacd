"""Normalise extracted text, fingerprint it for exact deduplication, and describe it."""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assets.normalization.extract import Extraction

# Invisible characters that PDF and Word exports leave inside words: soft hyphen,
# zero-width space, word joiner, stray BOM. ZWJ/ZWNJ stay: emoji and several
# scripts need them.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u2060\ufeff"))
# Control characters (Unicode category Cc) other than \t and \n, and lone
# surrogates, which come from lossy decoding and cannot even be encoded to UTF-8.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_TRAILING_SPACE = re.compile(r" +\n")
_BLANK_LINES = re.compile(r"\n{3,}")
# Lookarounds, so "a-\nb-\nc" joins both breaks.
_HYPHENATED_BREAK = re.compile(r"(?<=(\w))-\n ?(?=(\w))")
_CJK_CHAR = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*")


def normalize_text(text: str) -> str:
    """Canonical form of extracted text: NFKC, plain spaces and newlines, no
    control characters, at most one blank line in a row, end-of-line hyphenation undone."""
    text = unicodedata.normalize("NFKC", text)
    # splitlines knows every line boundary Unicode has (\r\n, \r, \v, \f, \x85,
    # \u2028, \u2029); PDF extractors emit most of them.
    text = "\n".join(text.splitlines())
    text = text.translate(_INVISIBLE)
    text = _CONTROL.sub("", text)
    text = _HORIZONTAL_SPACE.sub(" ", text)
    text = _TRAILING_SPACE.sub("\n", text)
    text = _HYPHENATED_BREAK.sub(_join_hyphenated, text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def _join_hyphenated(match: re.Match[str]) -> str:
    before, after = match.group(1), match.group(2)
    # Only lowercase on both sides: "Jean-\nPierre" and "COVID-\n19" keep their hyphen.
    if before.islower() and after.islower():
        return ""
    return match.group(0)


def text_hash(text: str) -> str:
    """SHA-256 hex of the text with case and whitespace differences erased.

    Two documents that differ only in layout or capitalisation are the same
    document for training purposes, so their hashes collide on purpose.
    """
    canonical = " ".join(normalize_text(text).casefold().split())
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def word_count(text: str) -> int:
    """Number of words; each CJK character counts as one, since those scripts do
    not separate words with spaces."""
    cjk = len(_CJK_CHAR.findall(text))
    return cjk + len(_WORD.findall(_CJK_CHAR.sub(" ", text)))


# --- running headers and footers ------------------------------------------------------

_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")
# Running headers and footers sit at a page's edges; a line repeated in the body
# of most pages (a bare number in a table column, a recurring label) is content.
_EDGE_LINES = 3


def _line_pattern(line: str) -> str:
    """A line with its numbers erased, so "Page 2 of 9" and "Page 3 of 9" match."""
    return _DIGITS.sub("#", _SPACES.sub(" ", line).strip())


def _edge_indexes(lines: list[str]) -> list[int]:
    filled = [index for index, line in enumerate(lines) if line.strip()]
    return sorted(set(filled[:_EDGE_LINES]) | set(filled[-_EDGE_LINES:]))


def remove_repeated_lines(
    pages: list[str], min_pages: int = 3, ratio: float = 0.6
) -> tuple[list[str], list[str]]:
    """Drop running headers, footers and page numbers from page texts.

    A line among the first or last three non-empty lines of a page is dropped
    when the same line, numbers aside, sits at an edge of at least `ratio` of
    the pages, and there are at least `min_pages` pages. Returns the cleaned
    pages and the patterns removed (numbers shown as "#"), most frequent first.
    """
    if len(pages) < min_pages:
        return list(pages), []
    split = [page.split("\n") for page in pages]
    counts: dict[str, int] = {}
    for lines in split:
        for pattern in {_line_pattern(lines[index]) for index in _edge_indexes(lines)}:
            counts[pattern] = counts.get(pattern, 0) + 1
    threshold = max(math.ceil(ratio * len(pages)), 2)
    repeated = {pattern for pattern, count in counts.items() if count >= threshold}
    if not repeated:
        return list(pages), []
    cleaned: list[str] = []
    for lines in split:
        doomed = {i for i in _edge_indexes(lines) if _line_pattern(lines[i]) in repeated}
        kept = "\n".join(line for index, line in enumerate(lines) if index not in doomed)
        cleaned.append(_BLANK_LINES.sub("\n\n", kept).strip())
    removed = sorted(repeated, key=lambda pattern: (-counts[pattern], pattern))
    return cleaned, removed


# --- document metadata ---------------------------------------------------------------


def document_metadata(extraction: Extraction, pages_text: list[str]) -> dict[str, Any]:
    """What the document record shows: title, author, dates, size, language.

    `pages_text` is the text that will be kept (normalised, running headers
    removed); title, author, created and modified come from the file itself
    and are None when it does not record them.
    """
    # Language detection lives with quality scoring, which imports this module.
    from assets.quality.score import detect_language

    text = "\n\n".join(page for page in pages_text if page.strip())
    language, probability = detect_language(text)
    confidences = [
        page.ocr_confidence for page in extraction.pages if page.ocr_confidence is not None
    ]
    return {
        "title": extraction.metadata.get("title"),
        "author": extraction.metadata.get("author"),
        "created": extraction.metadata.get("created"),
        "modified": extraction.metadata.get("modified"),
        "page_count": len(pages_text),
        "word_count": word_count(text),
        "language": language,
        "language_probability": probability,
        "extraction_method": extraction.method,
        "ocr_pages": sum(1 for page in extraction.pages if page.method == "ocr"),
        # Mean over the OCR'd pages whose confidence could be measured.
        "ocr_confidence": round(sum(confidences) / len(confidences), 4) if confidences else None,
    }
