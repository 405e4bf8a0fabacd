"""Issue 7's answer metrics as plain functions, with the real MiniLM model."""

from __future__ import annotations

import pytest

from assets.evaluation.metrics import (
    citation_accuracy,
    is_refusal,
    latency_summary,
    percentile,
    refusal_accuracy,
    semantic_similarity,
    sentences,
    unsupported_claim_rate,
)

REFUSAL = "I can't answer that from this project's documents."
ESCALATION = "I can't help with that request here. Please contact the responsible team."


def test_semantic_similarity_tells_paraphrases_from_unrelated_answers() -> None:
    same, other = semantic_similarity(
        ["Staff get twenty-five days of holiday a year.", "The canteen opens at eight."],
        [
            "Employees receive 25 days of annual leave per year.",
            "Employees receive 25 days of annual leave per year.",
        ],
    )
    assert same > 0.6 and other < 0.3 and same > other + 0.3
    assert semantic_similarity([], []) == []
    with pytest.raises(ValueError, match="pair up"):
        semantic_similarity(["a"], [])


def test_refusals_are_recognised_with_small_drift() -> None:
    assert is_refusal(REFUSAL, REFUSAL, ESCALATION)
    assert is_refusal("I can't answer that from this projects documents", REFUSAL)
    assert is_refusal(ESCALATION + " Thank you.", REFUSAL, ESCALATION)
    assert not is_refusal("Employees get 25 days of annual leave.", REFUSAL, ESCALATION)
    assert refusal_accuracy(
        ["answer", "refusal", "escalation", "answer"], [False, True, False, True]
    ) == pytest.approx(0.5)


def test_unsupported_claims_are_the_sentences_the_context_does_not_back() -> None:
    context = ["Employees receive 25 working days of annual leave per calendar year."]
    backed = "Employees receive 25 working days of annual leave."
    invented = "The company also pays a bonus of 5000 pounds every December."
    assert sentences(f"{backed} {invented}") == [backed, invented]
    assert unsupported_claim_rate(backed, context) == 0.0
    assert unsupported_claim_rate(f"{backed} {invented}", context) == 0.5
    assert unsupported_claim_rate("", context) == 0.0


def test_citation_accuracy_and_latency() -> None:
    assert citation_accuracy(
        [["a.docx", "b.md"], ["b.md"], []], ["a.docx", "a.docx", "a.docx"]
    ) == pytest.approx(1 / 3)
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 95) == 5.0 and percentile([], 50) == 0.0
    summary = latency_summary([1.0, 2.0, 3.0, 10.0], [10, 20, 30, 40])
    assert summary["latency_p50_s"] == 2.5
    assert summary["latency_p95_s"] == pytest.approx(8.95)
    assert summary["tokens_per_second"] == 6.25
