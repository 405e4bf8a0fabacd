from __future__ import annotations

import pytest

from assets.dataset.chunking import CHUNKER_VERSION, Chunk, chunk_pages

HANDBOOK = [
    {
        "number": 1,
        "text": (
            "# Leave\n\n"
            "Employees get 25 days of annual leave per year.\n\n"
            "## Carry over\n\n"
            "Up to five unused days carry over to the next year.\n\n"
            "## Requests\n\n"
            "Leave is requested in the HR portal at least two weeks ahead.\n"
        ),
    },
    {
        "number": 2,
        "text": (
            "More about requests: managers answer within three working days.\n\n"
            "# Expenses\n\n"
            "Receipts are needed for every claim over 10 GBP.\n\n"
            "## Travel\n\n"
            "Rail travel is second class unless the journey exceeds three hours.\n\n"
            "### Hotels\n\n"
            "Hotels are booked through the travel desk.\n\n"
            "# Security\n\n"
            "Lock your screen when you leave your desk.\n"
        ),
    },
]


def _chunks(pages: list[dict] = HANDBOOK, max_chars: int = 120) -> list[Chunk]:
    return chunk_pages("doc-1", "handbook.md", pages, max_chars=max_chars)


def _page_texts(pages: list[dict]) -> dict[int, str]:
    return {int(p["number"]): p["text"] for p in pages}


def _long_table(rows: int = 100) -> str:
    return "\n".join(
        f"office: Office {i}; city: City {i}; phone: +44 1632 960 {i:03d}" for i in range(rows)
    )


PAGE_SETS = {
    "handbook": HANDBOOK,
    "table": [{"number": 1, "text": _long_table()}],
    "leading-whitespace": [{"number": 3, "text": "\n\n   \n  Indented start.\n\n\n  Tail   \n\n"}],
    "mixed": [
        {"number": 1, "text": "# T\n\n" + "word " * 60 + "\n\n" + _long_table(20)},
        {"number": 2, "text": "x\n\ny\n\n## Sub\n\nz"},
    ],
}


@pytest.mark.parametrize("max_chars", [40, 120, 800])
@pytest.mark.parametrize("name", list(PAGE_SETS))
def test_spans_map_back_to_page_text(name: str, max_chars: int) -> None:
    pages = PAGE_SETS[name]
    texts = _page_texts(pages)
    chunks = _chunks(pages, max_chars)
    assert chunks
    for c in chunks:
        page_text = texts[c.page]
        assert 0 <= c.start < c.end <= len(page_text)
        assert page_text[c.start : c.end].strip() == c.text
        assert c.text  # no empty chunks
        assert c.document_id == "doc-1"
        assert c.filename == "handbook.md"
        assert c.version == CHUNKER_VERSION


@pytest.mark.parametrize("max_chars", [40, 120, 800])
@pytest.mark.parametrize("name", list(PAGE_SETS))
def test_chunks_cover_every_word_once_in_order(name: str, max_chars: int) -> None:
    pages = PAGE_SETS[name]
    chunks = _chunks(pages, max_chars)
    for page in pages:
        on_page = [c for c in chunks if c.page == page["number"]]
        spans = [(c.start, c.end) for c in on_page]
        assert spans == sorted(spans)
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert end <= start  # no overlap
        assert " ".join(c.text for c in on_page).split() == page["text"].split()


def test_heading_paths_track_levels() -> None:
    by_first_line = {c.text.split("\n", 1)[0]: c.heading for c in _chunks(max_chars=60)}
    assert by_first_line["# Leave"] == ["Leave"]
    assert by_first_line["## Carry over"] == ["Leave", "Carry over"]
    # A sibling `##` replaces the previous `##`, it does not nest under it.
    assert by_first_line["## Requests"] == ["Leave", "Requests"]
    # The path carries over onto the next page until a new heading appears.
    assert by_first_line["More about requests: managers answer within three working days."] == [
        "Leave",
        "Requests",
    ]
    assert by_first_line["# Expenses"] == ["Expenses"]
    # A `##` after a new `#` sits under the new `#` only.
    assert by_first_line["## Travel"] == ["Expenses", "Travel"]
    assert by_first_line["### Hotels"] == ["Expenses", "Travel", "Hotels"]
    # Going back to level 1 drops every deeper level.
    assert by_first_line["# Security"] == ["Security"]


def test_heading_starts_a_new_chunk_even_when_it_would_fit() -> None:
    chunks = _chunks(max_chars=10_000)
    firsts = [c.text.split("\n", 1)[0] for c in chunks]
    assert firsts == [
        "# Leave",
        "## Carry over",
        "## Requests",
        "More about requests: managers answer within three working days.",
        "# Expenses",
        "## Travel",
        "### Hotels",
        "# Security",
    ]
    # The heading and the paragraphs below it stay together.
    assert chunks[0].text == "# Leave\n\nEmployees get 25 days of annual leave per year."


def test_heading_with_trailing_hashes_and_no_space_is_not_a_heading() -> None:
    pages = [{"number": 1, "text": "## Closed heading ##\n\nbody\n\n#hashtag line\n\nmore"}]
    chunks = chunk_pages("d", "f.md", pages, max_chars=12)
    assert [c.heading for c in chunks] == [["Closed heading"]] * 4


def test_paragraphs_of_one_section_are_packed_up_to_max_chars() -> None:
    paragraphs = [f"Paragraph number {i} has some words." for i in range(10)]
    pages = [{"number": 1, "text": "\n\n".join(paragraphs)}]
    chunks = chunk_pages("d", "f.txt", pages, max_chars=100)
    assert 1 < len(chunks) < len(paragraphs)  # packed, but not into one chunk
    for c in chunks:
        assert len(c.text) <= 100
        assert c.end - c.start <= 100


@pytest.mark.parametrize("max_chars", [30, 80, 200, 800])
def test_max_chars_respected_except_single_long_line(max_chars: int) -> None:
    long_line = "A single line that is far too long to fit " * 10
    text = "\n\n".join(
        [
            "# Title",
            "Short paragraph one.",
            long_line.strip(),
            "Line a\nLine b\nLine c\nLine d",
            _long_table(15),
            "Closing words here.",
        ]
    )
    chunks = chunk_pages("d", "f.txt", [{"number": 1, "text": text}], max_chars=max_chars)
    for c in chunks:
        if len(c.text) > max_chars:
            assert "\n" not in c.text, "only a single line may exceed max_chars"
    if len(long_line.strip()) > max_chars:
        # The too-long line stands alone rather than being cut mid-line or dropped.
        assert long_line.strip() in [c.text for c in chunks]
    assert " ".join(c.text for c in chunks).split() == text.split()


def test_oversized_block_without_blank_lines_is_cut_at_line_ends() -> None:
    table = _long_table(100)
    lines = table.split("\n")
    chunks = chunk_pages("d", "office.csv", [{"number": 1, "text": table}], max_chars=800)
    assert len(chunks) > 1
    for c in chunks:
        assert len(c.text) <= 800
        # Every chunk is a run of whole rows.
        for row in c.text.split("\n"):
            assert row in lines
    assert [row for c in chunks for row in c.text.split("\n")] == lines


def test_page_numbers_are_carried() -> None:
    pages = [
        {"number": 7, "text": "First page text."},
        {"number": "8", "text": "Second page text."},
        {"number": 9, "text": "   \n\n  "},
        {"number": 10, "text": "Fourth page text."},
    ]
    chunks = chunk_pages("d", "f.pdf", pages)
    assert [(c.page, c.text) for c in chunks] == [
        (7, "First page text."),
        (8, "Second page text."),
        (10, "Fourth page text."),
    ]
    assert all(isinstance(c.page, int) for c in chunks)


def test_no_pages_or_blank_pages_give_no_chunks() -> None:
    assert chunk_pages("d", "f", []) == []
    assert chunk_pages("d", "f", [{"number": 1, "text": ""}, {"number": 2, "text": "\n \n"}]) == []


def test_ids_are_stable_and_distinct() -> None:
    first = _chunks(max_chars=60)
    second = _chunks(max_chars=60)
    assert [c.id for c in first] == [c.id for c in second]
    assert first == second
    ids = [c.id for c in first]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 20 for i in ids)


def test_ids_depend_on_document_and_page() -> None:
    pages = [{"number": 1, "text": "Same text."}, {"number": 2, "text": "Same text."}]
    a = chunk_pages("doc-a", "f.txt", pages)
    b = chunk_pages("doc-b", "f.txt", pages)
    assert a[0].id != a[1].id  # same span, different page
    assert {c.id for c in a}.isdisjoint({c.id for c in b})


def test_to_dict_round_trips() -> None:
    chunk = _chunks()[0]
    data = chunk.to_dict()
    assert set(data) == {
        "kind",
        "tokens",
        "id",
        "document_id",
        "filename",
        "page",
        "start",
        "end",
        "heading",
        "text",
        "version",
    }
    assert Chunk(**data) == chunk
