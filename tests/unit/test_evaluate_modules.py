"""The metrics as local `evaluate` modules give the plain functions' figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from assets.evaluation.metrics import fuzzy_match, semantic_similarity

MODULES = Path(__file__).resolve().parents[2] / "assets" / "evaluation" / "evaluate_modules"
REFUSAL = "I can't answer that from this project's documents."


def _load(name: str):
    evaluate = pytest.importorskip("evaluate")
    return evaluate.load(str(MODULES / name))


def test_answer_quality_module() -> None:
    predictions = ["25 days.", "It is on the ground floor"]
    references = ["25 days", "Ground floor"]
    result = _load("answer_quality").compute(predictions=predictions, references=references)
    assert result["exact_match"] == pytest.approx(0.5)
    assert result["fuzzy_match"] == pytest.approx(
        (1.0 + fuzzy_match(predictions[1], references[1])) / 2
    )
    assert result["semantic_similarity"] == pytest.approx(
        sum(semantic_similarity(predictions, references)) / 2, abs=1e-5
    )


def test_grounding_module() -> None:
    result = _load("grounding").compute(
        predictions=["Leave is 25 days per year.", "The moon is made of cheese."],
        contexts=[["The annual leave allowance is 25 days per year."], ["Leave is 25 days."]],
        cited_documents=[["leave", "faq"], ["faq"]],
        gold_documents=["leave", "leave"],
    )
    assert result["unsupported_claim_rate"] == pytest.approx(0.5)
    assert result["citation_accuracy"] == pytest.approx(0.5)


def test_refusal_accuracy_module() -> None:
    result = _load("refusal_accuracy").compute(
        predictions=[REFUSAL, "25 days.", "Paris."],
        expected=["refusal", "answer", "refusal"],
        refusal_texts=[REFUSAL],
    )
    assert result["refusal_accuracy"] == pytest.approx(2 / 3)
