"""Where a citation lies in the page the viewer shows (api/services/cited_text.py), with the
citations the trained sample project gave for "How many days of annual leave do employees
get?" (tests/unit/data/annual_leave_citations.json, captured from its v1 deployment)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.services.cited_text import (
    Edit,
    Piece,
    align,
    pieces,
    quote_span,
    residual_edits,
)

DATA = json.loads(
    (Path(__file__).parent / "data" / "annual_leave_citations.json").read_text(encoding="utf-8")
)
PAGE: str = DATA["page_text"]
CHUNKS = {c["id"]: c for c in DATA["chunks"]}


def marked(parts: list[Piece]) -> str:
    return "".join(p.text for p in parts if p.marked)


def shown(parts: list[Piece]) -> str:
    return "".join(p.text for p in parts)


@pytest.mark.parametrize("index", range(len(DATA["citations"])))
def test_real_citations_index_the_screened_page(index: int) -> None:
    citation = DATA["citations"][index]
    chunk = CHUNKS[citation["chunk_id"]]
    assert PAGE[chunk["start"] : chunk["end"]] == chunk["text"]
    start, end = quote_span(PAGE, chunk, citation["quote_start"], citation["quote_end"])
    assert (start, end) == (citation["quote_start"], citation["quote_end"])
    parts = pieces(PAGE, residual_edits(PAGE, [chunk]), start, end)
    # The page is shown whole, and the mark holds the quote's sentences (the quote joins them
    # with single spaces; the page keeps its paragraph breaks).
    assert shown(parts) == PAGE
    assert " ".join(marked(parts).split()) == citation["quote"]
    assert sum(p.marked for p in parts) == 1


def test_first_citation_is_the_entitlement_sentence() -> None:
    citation = DATA["citations"][0]
    assert citation["filename"] == "annual-leave-policy.docx" and citation["page"] == 1
    parts = pieces(PAGE, [], citation["quote_start"], citation["quote_end"])
    assert marked(parts).startswith("Employees receive 1 additional day of annual leave")
    assert parts[0].text.endswith("\n\n") and not parts[0].marked


def residual_chunk() -> dict:
    """The "Policy at a glance" chunk as a second screening with settings.pii_residual=review
    leaves it: the owner's name and e-mail address replaced in the chunk only."""
    chunk = dict(next(c for c in DATA["chunks"] if "Amara Nwosu" in c["text"]))
    chunk["text"] = (
        chunk["text"]
        .replace("Amara Nwosu", "<PERSON>")
        .replace("hr@acme-robotics.example", "<EMAIL_ADDRESS>")
    )
    return chunk


def test_residual_redaction_is_recovered_in_page_characters() -> None:
    chunk = residual_chunk()
    edits = residual_edits(PAGE, [chunk])
    name, email = PAGE.index("Amara Nwosu"), PAGE.index("hr@acme-robotics.example")
    assert edits == [
        Edit(name, name + len("Amara Nwosu"), "<PERSON>"),
        Edit(email, email + len("hr@acme-robotics.example"), "<EMAIL_ADDRESS>"),
    ]
    parts = pieces(PAGE, edits, None, None)
    # Hidden where the chunk hid them (the name appears again further down, in a chunk that
    # was not redacted in this example).
    assert shown(parts).count("Amara Nwosu") == PAGE.count("Amara Nwosu") - 1
    assert shown(parts).count("hr@acme-robotics") == PAGE.count("hr@acme-robotics") - 1
    assert "Policy owner: <PERSON>, People Operations Manager." in shown(parts)
    assert not any(p.marked for p in parts)


def test_quote_after_a_placeholder_maps_back_to_the_page() -> None:
    chunk = residual_chunk()
    local = chunk["text"].index("Contact: <EMAIL_ADDRESS>.")
    # Evidence offsets: the chunk's page start plus characters of the (redacted) chunk text.
    start, end = chunk["start"] + local, chunk["start"] + len(chunk["text"])
    page_start, page_end = quote_span(PAGE, chunk, start, end)
    assert PAGE[page_start:page_end] == "Contact: hr@acme-robotics.example."
    parts = pieces(PAGE, residual_edits(PAGE, [chunk]), page_start, page_end)
    # The mark shows what the chunk showed, the address hidden.
    assert marked(parts) == "Contact: <EMAIL_ADDRESS>."


def test_quote_bound_inside_a_placeholder_takes_the_whole_replaced_text() -> None:
    chunk = residual_chunk()
    inside = chunk["start"] + chunk["text"].index("<PERSON>") + 3
    start, end = quote_span(PAGE, chunk, inside, inside + 2)
    assert PAGE[start:end] == "Amara Nwosu"


def test_overlapping_chunks_hide_a_finding_once() -> None:
    chunk = residual_chunk()
    # A second chunk overlapping the first over the owner's paragraph, redacted the same way.
    tail_start = PAGE.index("Policy owner:")
    overlap = {
        "start": tail_start,
        "end": chunk["end"],
        "text": PAGE[tail_start : chunk["end"]].replace("Amara Nwosu", "<PERSON>"),
    }
    edits = residual_edits(PAGE, [chunk, overlap])
    assert [e.text for e in edits] == ["<PERSON>", "<EMAIL_ADDRESS>"]


def test_a_chunk_that_no_longer_matches_its_page_hides_its_whole_span() -> None:
    chunk = {"start": 10, "end": 30, "text": "<PERSON> something else entirely"}
    assert align(PAGE[10:30], chunk["text"]) is None
    assert residual_edits(PAGE, [chunk]) == [Edit(10, 30, chunk["text"])]
    assert quote_span(PAGE, chunk, 12, 20) == (10, 30)


@pytest.mark.parametrize(
    ("original", "redacted", "replaced"),
    [
        ("Call Jo Bloggs now", "Call <PERSON> now", ["Jo Bloggs"]),
        ("Jo Bloggs", "<PERSON>", ["Jo Bloggs"]),
        (
            "mail a@b.example or c@d.example",
            "mail <EMAIL> or <EMAIL>",
            ["a@b.example", "c@d.example"],
        ),
        # A placeholder the first screening already wrote stays text.
        ("<PERSON> met Ann", "<PERSON> met <PERSON>", ["Ann"]),
        ("Jo Bloggs jo@x.example", "<PERSON> <EMAIL>", ["Jo", "Bloggs jo@x.example"]),
    ],
)
def test_align(original: str, redacted: str, replaced: list[str]) -> None:
    segments = align(original, redacted)
    assert segments is not None
    assert [original[s.start : s.end] for s in segments if s.replaced] == replaced
    # Every segment maps a run of the original onto a run of the redacted text, in order.
    assert (
        "".join(
            redacted[s.chunk_start : s.chunk_end] if s.replaced else original[s.start : s.end]
            for s in segments
        )
        == redacted
    )


def test_pieces_mark_a_placeholder_the_span_touches_whole() -> None:
    text = "Ask Jo Bloggs about it."
    edits = [Edit(4, 13, "<PERSON>")]
    parts = pieces(text, edits, 8, 23)
    assert parts == [Piece("Ask ", False), Piece("<PERSON> about it.", True)]
