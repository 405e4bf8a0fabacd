from __future__ import annotations

import pytest

from assets.normalization.extract import Extraction, Page
from assets.normalization.normalize import (
    document_metadata,
    normalize_text,
    remove_repeated_lines,
    text_hash,
    word_count,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("ﬁnance ＡＢＣ ①", "finance ABC 1", id="nfkc"),
        pytest.param("a\r\nb\rc\x0bd\x0ce\u2028f", "a\nb\nc\nd\ne\nf", id="line-endings"),
        pytest.param("tab\there", "tab here", id="tab"),
        pytest.param("bell\x07 nul\x00 esc\x1b", "bell nul esc", id="control-chars"),
        pytest.param(
            "non\u00a0breaking\u2009thin\u3000ideographic",
            "non breaking thin ideographic",
            id="odd-spaces",
        ),
        pytest.param("soft\u00adhyphen zero\u200bwidth", "softhyphen zerowidth", id="invisible"),
        pytest.param("emoji 👩\u200d💻 stays", "emoji 👩\u200d💻 stays", id="zwj-kept"),
        pytest.param("many     spaces", "many spaces", id="space-runs"),
        pytest.param("trailing   \nspaces \t\n", "trailing\nspaces", id="trailing"),
        pytest.param("a\n\n\n\n\nb\n \n \n\nc", "a\n\nb\n\nc", id="blank-lines"),
        pytest.param("a\n\nb", "a\n\nb", id="one-blank-line-kept"),
        pytest.param("the employ-\nees were", "the employees were", id="hyphenation"),
        pytest.param("employ- \n ees", "employees", id="hyphenation-with-spaces"),
        pytest.param("co-\nop-\neration", "cooperation", id="hyphenation-chain"),
        pytest.param("Jean-\nPierre", "Jean-\nPierre", id="capital-after"),
        pytest.param("COVID-\n19", "COVID-\n19", id="digit-after"),
        pytest.param("state-of-the-art", "state-of-the-art", id="inline-hyphen"),
        pytest.param("- item\n- item", "- item\n- item", id="list"),
        pytest.param("  \n  padded  \n\n", "padded", id="strip"),
        pytest.param("lone \ud800 surrogate", "lone surrogate", id="surrogate"),
        pytest.param("", "", id="empty"),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize(
    "text",
    ["ﬁnance\u00a0report-\ning\r\n\r\n\r\nend\t", "a  b\n\n\n\nc", "Ünïcödé  \u2028 text"],
)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Hello World", "hello   world"),
        ("Hello World\n", "  HELLO\n\n\nWORLD  "),
        ("Straße", "STRASSE"),
        ("ﬁle", "file"),
        ("a\u00a0b", "a b"),
    ],
)
def test_text_hash_collides_on_case_and_whitespace(a: str, b: str) -> None:
    assert text_hash(a) == text_hash(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("Hello World", "Hello Worlds"), ("ab", "a b"), ("25 days", "26 days")],
)
def test_text_hash_differs_on_content(a: str, b: str) -> None:
    assert text_hash(a) != text_hash(b)


def test_text_hash_is_sha256_hex() -> None:
    digest = text_hash("x")
    assert len(digest) == 64
    assert int(digest, 16) >= 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 0),
        ("   \n ", 0),
        ("one", 1),
        ("Hello, world!", 2),
        ("it's a well-known fact", 4),
        ("— – - • ...", 0),
        ("line one\nline two\tthree", 5),
        ("日本語", 3),
        ("Tokyo 東京 office", 4),
        ("Ünïcödé wörds", 2),
    ],
)
def test_word_count(text: str, expected: int) -> None:
    assert word_count(text) == expected


# --- running headers and footers ----------------------------------------------------

_BODIES = [
    "Annual leave is 25 days.\nCarry over is allowed.",
    "Sick leave needs a note after 3 days.",
    "Expenses are paid monthly.\nReceipts are required.",
    "Remote work needs approval.",
    "The office opens at 8.",
]


def _handbook(bodies: list[str]) -> list[str]:
    n = len(bodies)
    return [
        f"Acme Robotics Ltd - Employee Handbook - Page {i}\n\n{body}\n\nPage {i} of {n}\n{i}"
        for i, body in enumerate(bodies, start=1)
    ]


def test_running_headers_footers_and_page_numbers_are_removed() -> None:
    cleaned, removed = remove_repeated_lines(_handbook(_BODIES))

    assert cleaned == _BODIES
    assert set(removed) == {"Acme Robotics Ltd - Employee Handbook - Page #", "Page # of #", "#"}


def test_lines_on_fewer_pages_than_the_ratio_stay() -> None:
    pages = [f"{body}\n\nDRAFT" if i < 2 else body for i, body in enumerate(_BODIES)]

    cleaned, removed = remove_repeated_lines(pages)  # DRAFT on 2 of 5 pages < 0.6

    assert cleaned == pages
    assert removed == []


def test_ratio_is_a_parameter() -> None:
    pages = [f"{body}\n\nDRAFT" if i < 2 else body for i, body in enumerate(_BODIES)]

    cleaned, removed = remove_repeated_lines(pages, ratio=0.4)

    assert removed == ["DRAFT"]
    assert cleaned == _BODIES


@pytest.mark.parametrize("count", [1, 2])
def test_too_few_pages_are_left_alone(count: int) -> None:
    pages = _handbook(_BODIES[:count])

    assert remove_repeated_lines(pages) == (pages, [])


def test_repeated_lines_in_the_middle_of_pages_are_content() -> None:
    # A table column of bare numbers sits mid-page on every page of a report.
    pages = [
        f"Report page {i}\nintro line\nother intro\n\nRevenue\n1200\nCosts\n800\n\nnotes\nmore notes\nend {c}"
        for i, c in zip(range(1, 6), "abcde", strict=True)
    ]

    cleaned, removed = remove_repeated_lines(pages)

    assert all("1200" in page and "Revenue" in page for page in cleaned)
    assert "#" not in removed


# --- document metadata ------------------------------------------------------------------


def test_document_metadata() -> None:
    extraction = Extraction(
        pages=[
            Page(1, "Annual leave policy for all employees of the company."),
            Page(2, "scanned text", method="ocr", ocr_confidence=0.8),
            Page(3, "more scanned text", method="ocr", ocr_confidence=0.6),
        ],
        method="mixed",
        metadata={"title": "Handbook", "created": "2024-01-02T03:04:05+01:00", "ocr_pages": "2,3"},
    )
    pages = [
        "Annual leave policy for all employees of the company.",
        "Sick leave is paid from the first day of illness.",
        "",
    ]

    metadata = document_metadata(extraction, pages)

    assert metadata == {
        "title": "Handbook",
        "author": None,
        "created": "2024-01-02T03:04:05+01:00",
        "modified": None,
        "page_count": 3,
        "word_count": 19,
        "language": "en",
        "language_probability": metadata["language_probability"],
        "extraction_method": "mixed",
        "ocr_pages": 2,
        "ocr_confidence": 0.7,
    }
    assert metadata["language_probability"] > 0.5


def test_document_metadata_of_a_file_recording_nothing() -> None:
    extraction = Extraction(pages=[Page(1, "12 345")])

    metadata = document_metadata(extraction, ["12 345"])

    assert metadata["title"] is None and metadata["author"] is None
    assert metadata["created"] is None and metadata["modified"] is None
    assert (metadata["language"], metadata["language_probability"]) == ("und", 0.0)
    assert metadata["ocr_pages"] == 0 and metadata["ocr_confidence"] is None
    assert metadata["word_count"] == 2
