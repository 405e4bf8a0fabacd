"""Residual personal data after redaction: reported with type, example, document and a masked
snippet; examples concerned go to the review queue and stay out of training; chunks redacted."""

from __future__ import annotations

from assets.dataset.chunking import Chunk
from assets.dataset.generate import Example
from assets.dataset.pii_review import (
    REVIEW_REASON,
    find_residual,
    redact_chunks,
    route_to_review,
    summary,
)
from assets.dataset.review import included
from assets.privacy.screening import screener_for


def _chunk(cid: str, text: str, doc: str = "doc-1") -> Chunk:
    return Chunk(cid, doc, f"{doc}.md", 1, 0, len(text), ["Contacts"], text)


def _example(eid: str, chunk: Chunk, question: str, answer: str, context=()) -> Example:
    return Example(
        id=eid,
        document_id=chunk.document_id,
        chunk_id=chunk.id,
        question=question,
        answer=answer,
        kind="fact",
        generator="deterministic-v1",
        citations=[chunk.id],
        messages=[],
        context=list(context or [chunk.id]),
    )


def test_findings_name_type_example_document_and_mask_the_value() -> None:
    clean = _chunk("c-clean", "The build runs every night and takes twenty minutes.")
    dirty = _chunk(
        "c-dirty", "For payroll questions contact Maria Schmidt at maria.schmidt@acme-corp.de."
    )
    examples = [
        _example("e-clean", clean, "How long does the build take?", "Twenty minutes."),
        _example(
            "e-dirty", clean, "Who reviews builds?", "Builds are reviewed by Oluwaseun Adeyemi."
        ),
    ]
    screener = screener_for()

    found, in_chunks = find_residual([clean, dirty], examples, screener)

    kinds = {(f.where, f.entity_type) for f in found}
    assert ("chunk", "PERSON") in kinds and ("chunk", "EMAIL_ADDRESS") in kinds
    assert ("answer", "PERSON") in kinds
    answer = next(f for f in found if f.where == "answer")
    assert answer.example_id == "e-dirty" and answer.document_id == "doc-1"
    assert answer.filename == "doc-1.md"
    assert "Adeyemi" not in answer.snippet and "O" in answer.snippet  # masked, first letters kept
    assert set(in_chunks) == {"c-dirty"}
    text = summary(found)
    assert text.startswith(f"{len(found)} personal-data finding(s)") and "PERSON" in text

    redacted = redact_chunks([clean, dirty], in_chunks, screener)
    assert redacted[0] == clean
    assert "Maria" not in redacted[1].text and "<PERSON>" in redacted[1].text
    assert "<EMAIL_ADDRESS>" in redacted[1].text


def test_examples_holding_or_showing_a_finding_wait_for_review_out_of_training() -> None:
    clean = _chunk("c-clean", "The build runs every night.")
    dirty = _chunk("c-dirty", "Ask Maria Schmidt about payroll.")
    examples = [
        _example("e1", clean, "When does the build run?", "Every night."),
        _example("e2", dirty, "Who knows about payroll?", "Ask the payroll team."),
        _example("e3", clean, "When?", "Nightly.", context=["c-clean", "c-dirty"]),
    ]
    found, _ = find_residual([clean, dirty], examples, screener_for())

    routed, count = route_to_review(examples, found)

    assert count == 2
    assert [e.status for e in routed] == ["auto_accepted", "pending", "pending"]
    assert routed[1].review_reason == REVIEW_REASON
    shown = routed[1].scores["pii_findings"]
    assert shown[0]["entity_type"] == "PERSON" and "Schmidt" not in shown[0]["snippet"]
    row = {"status": "pending", "review_reason": REVIEW_REASON, "scores": {"overall": 1.0}}
    assert not included(row, "auto", 0.6)  # a high score does not let it through
    assert included({**row, "status": "approved"}, "auto", 0.6)
    assert included({**row, "review_reason": "sample"}, "auto", 0.6)


def test_nothing_found_in_clean_text() -> None:
    chunk = _chunk("c", "Run git gc --auto after many commits; the default limit is 6700 objects.")
    found, in_chunks = find_residual(
        [chunk], [_example("e", chunk, "What is the limit?", "6700 objects.")], screener_for()
    )
    assert found == [] and in_chunks == {}
    assert summary(found) == "no personal data left"
