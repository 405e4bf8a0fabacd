"""The questions an evaluation asks (the generated gold split, the project's own set, built-in
off-topic probes), the summaries per set, and the project's evaluation set's validation."""

from __future__ import annotations

import pytest

from api.errors import BadRequest
from api.services.evaluation_sets import QuestionIn, validate
from assets.dataset.export import to_jsonl
from assets.dataset.refusals import ESCALATION, UNRELATED
from assets.evaluation.metrics import answer_contains
from assets.evaluation.probes import PROBES, probe_questions
from assets.evaluation.report import summarize_sets
from assets.evaluation.run import eval_questions
from resources.object_store import LocalObjectStore, ProjectStore


def _store(tmp_path) -> tuple[ProjectStore, dict]:
    store = ProjectStore(LocalObjectStore(tmp_path), "acme", "handbook")
    gold = [
        {
            "id": "g1",
            "kind": "fact",
            "question": "How long is leave?",
            "answer": "25 days.",
            "document_id": "d1",
        }
    ]
    validation = [
        {
            "id": "v1",
            "kind": "refusal",
            "question": "Who painted the Mona Lisa?",
            "answer": "no",
            "document_id": None,
        }
    ]
    store.put_bytes("datasets/v/gold.jsonl", to_jsonl(gold))
    store.put_bytes("datasets/v/validation.jsonl", to_jsonl(validation))
    splits = {
        "splits": {
            "gold": {"key": "datasets/v/gold.jsonl"},
            "validation": {"key": "datasets/v/validation.jsonl"},
        }
    }
    return store, splits


def test_every_source_is_asked_and_labelled(tmp_path) -> None:
    store, splits = _store(tmp_path)
    own = [
        {
            "question": "How many days of leave?",
            "answer": "25",
            "document": "leave.md",
            "expect": "answer",
        },
        {"question": "What is our revenue?", "answer": None, "document": None, "expect": "refuse"},
    ]

    questions = eval_questions(
        store, splits, None, 5, project_set=own, documents={"leave.md": "d1"}, probes=4, seed=3
    )

    by_source = {}
    for q in questions:
        by_source.setdefault(q["source"], []).append(q)
    assert [q["kind"] for q in by_source["generated"]] == ["answer", "refusal"]
    project = by_source["project"]
    assert project[0]["kind"] == "answer" and project[0]["document_id"] == "d1"
    assert project[0]["reference"] == "25"
    assert project[1]["kind"] == "refusal" and project[1]["document_id"] is None
    assert len(by_source["builtin"]) == 4
    # the same probes for the same project each time
    again = eval_questions(store, splits, None, 5, probes=4, seed=3)
    assert [q["question"] for q in again if q["source"] == "builtin"] == [
        q["question"] for q in by_source["builtin"]
    ]


def test_probes_are_varied_and_not_what_the_builder_trains_on() -> None:
    trained = {q.lower() for q in UNRELATED} | {t.lower() for t in ESCALATION}
    assert not {q.lower() for _, q in PROBES} & trained
    kinds = {k for k, _ in PROBES}
    assert kinds == {"refusal", "escalation"}
    assert len(probe_questions(1000)) == len(PROBES)
    assert probe_questions(0) == []


def _row(source: str, kind: str, contains: float, refused: bool) -> dict:
    entry = {"refused": refused, "citation_correct": None}
    if kind == "answer":
        entry.update(
            answer_contains=contains,
            exact_match=0.0,
            fuzzy_match=contains,
            semantic_similarity=contains,
            unsupported_claim_rate=0.0,
        )
    return {"source": source, "kind": kind, "base": entry, "candidate": entry}


def test_summaries_per_question_set_count_the_builtin_probes_in_each() -> None:
    rows = [
        _row("generated", "answer", 1.0, False),
        _row("project", "answer", 0.0, False),
        _row("project", "answer", 1.0, False),
        _row("builtin", "refusal", 0.0, True),
        _row("builtin", "refusal", 0.0, False),
    ]
    sets = summarize_sets(rows, ["base", "candidate"])
    assert sets["generated"]["candidate"]["answer_contains"] == 1.0
    assert sets["project"]["candidate"]["answer_contains"] == 0.5
    assert sets["generated"]["candidate"]["refusal_accuracy"] == pytest.approx(2 / 3)
    assert sets["project"]["candidate"]["refusal_accuracy"] == pytest.approx(3 / 4)
    assert "project" not in summarize_sets(rows[:1] + rows[3:], ["base", "candidate"])


@pytest.mark.parametrize(
    ("answer", "reference", "expected"),
    [
        ("The default value is 6700.", "6700", 1.0),
        ("Defaults to 10.", "1", 0.0),
        ("An integer -1..9, indicating a compression level.", "-1..9", 1.0),
        ("(default is 2 weeks ago)", "2 weeks", 1.0),
        ("Use the --no-verify option.", "--no-verify", 1.0),
        ("It is shown in reverse chronological order", "reverse chronological order", 1.0),
        ("It is shown in date order", "reverse chronological order", 0.0),
    ],
)
def test_answer_contains(answer: str, reference: str, expected: float) -> None:
    assert answer_contains(answer, reference) == expected


def test_evaluation_set_validation_names_the_question_to_fix() -> None:
    ok = validate(
        [
            QuestionIn(question="How many days  of leave?", answer="25", document="leave.md"),
            QuestionIn(question="What is our revenue?", expect="refuse"),
        ],
        {"leave.md"},
    )
    assert ok == [
        {
            "question": "How many days of leave?",
            "answer": "25",
            "document": "leave.md",
            "expect": "answer",
        },
        {"question": "What is our revenue?", "answer": None, "document": None, "expect": "refuse"},
    ]
    for questions, message in [
        ([], "questions is empty"),
        (
            [QuestionIn(question="Why?", expect="answer")],
            r"questions\[0\]: an answerable question needs",
        ),
        (
            [QuestionIn(question="How many days?", answer="25", document="nope.pdf")],
            "not one of the project's documents",
        ),
        (
            [
                QuestionIn(question="How many?", answer="1"),
                QuestionIn(question="how  many?", answer="2"),
            ],
            r"questions\[1\]: repeats questions\[0\]",
        ),
        ([QuestionIn(question="How many?", expect="maybe")], "expect must be answer"),
        ([QuestionIn(question="ab", answer="x")], "3 to 1000 characters"),
    ]:
        with pytest.raises(BadRequest, match=message):
            validate(questions, {"leave.md"})
