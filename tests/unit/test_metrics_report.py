from __future__ import annotations

import html

import pytest

from assets.evaluation.metrics import exact_match, fuzzy_match, mean, normalize_answer
from assets.evaluation.report import (
    DEFAULT_MARGINS,
    failure_order,
    gate,
    promotion_verdict,
    render_html,
    score_rows,
    summarize,
)
from assets.retrieval.answering import Answered, Prepared
from assets.retrieval.grounding import Retrieved

# --- metrics ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Hello World", "hello world", id="case"),
        pytest.param("25 days.", "25 days", id="punctuation"),
        pytest.param("It's (mostly) fine!", "its mostly fine", id="more-punctuation"),
        pytest.param("The cat sat on a mat", "cat sat on mat", id="articles"),
        pytest.param("An apple", "apple", id="article-an"),
        pytest.param("THE END", "end", id="uppercase-article"),
        pytest.param("theatre another", "theatre another", id="article-inside-word-kept"),
        pytest.param("  many \n\t spaces  ", "many spaces", id="whitespace"),
        pytest.param("ﬁve ＤＡＹＳ", "five days", id="nfkc"),
        pytest.param("", "", id="empty"),
        pytest.param("the a an .", "", id="nothing-left"),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        ("The answer is 25 days.", "the answer is 25 days", 1.0),
        ("25 Days!", "25 days", 1.0),
        ("A dog", "dog", 1.0),
        ("25 days", "26 days", 0.0),
        ("25 days of leave", "25 days", 0.0),
        ("", "", 1.0),
        ("", "something", 0.0),
    ],
)
def test_exact_match(prediction: str, reference: str, expected: float) -> None:
    result = exact_match(prediction, reference)
    assert result == expected
    assert isinstance(result, float)


@pytest.mark.parametrize(
    ("prediction", "reference"),
    [
        ("The canteen is open from 08:00.", "the canteen is open from 08:00"),
        ("A dog", "dog"),
        ("", ""),
    ],
)
def test_fuzzy_match_is_one_for_equal_normalised_strings(prediction: str, reference: str) -> None:
    assert fuzzy_match(prediction, reference) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("prediction", "reference"),
    [
        ("completely different", "25 days"),
        ("25 days", "26 days"),
        ("", "reference"),
        ("prediction", ""),
        ("x" * 500, "y"),
    ],
)
def test_fuzzy_match_bounds(prediction: str, reference: str) -> None:
    value = fuzzy_match(prediction, reference)
    assert 0.0 <= value <= 1.0
    assert value < 1.0
    assert fuzzy_match(reference, prediction) == pytest.approx(value)  # symmetric


def test_fuzzy_match_orders_closer_answers_higher() -> None:
    reference = "The guest network is called Acme-Guest."
    exact = fuzzy_match("the guest network is called acmeguest", reference)
    close = fuzzy_match("The guest network is named Acme-Guest.", reference)
    far = fuzzy_match("Please ask at reception.", reference)
    nothing = fuzzy_match("zzzz", reference)
    assert exact == pytest.approx(1.0)
    assert exact > close > far >= nothing >= 0.0


def test_mean() -> None:
    assert mean([]) == 0.0
    assert mean([1.0]) == 1.0
    assert mean([0.0, 1.0, 0.5]) == pytest.approx(0.5)


# --- report -----------------------------------------------------------------

REFUSAL = "I can't answer that from this project's documents."


def _answered(text: str, refused: bool = False, cited: str | None = "leave") -> Answered:
    chunk = {
        "id": "c1",
        "document_id": cited,
        "filename": "leave.docx",
        "page": 1,
        "start": 0,
        "end": 40,
        "text": "The annual leave allowance is 25 days.",
    }
    hits = [] if refused or cited is None else [Retrieved(chunk, 1.0)]
    prepared = Prepared(
        "q",
        [],
        REFUSAL if refused else None,
        hits,
        0.1 if refused else 0.9,
        [h.citation() for h in hits],
    )
    return Answered(prepared, REFUSAL if refused else text, 0, 0)


QUESTIONS = [
    {
        "id": "e1",
        "kind": "answer",
        "question": "How many days of leave?",
        "reference": "25 days",
        "document_id": "leave",
    },
    {
        "id": "e2",
        "kind": "answer",
        "question": "Where is the canteen?",
        "reference": "Ground floor",
        "document_id": "leave",
    },
    {
        "id": "r1",
        "kind": "refusal",
        "question": "Who painted the Mona Lisa?",
        "reference": REFUSAL,
        "document_id": None,
    },
]


def _rows() -> list[dict]:
    answers = {
        "base": [
            _answered("I do not know"),
            _answered("Ground floor"),
            _answered("Leonardo da Vinci"),
        ],
        "candidate": [
            _answered("25 days"),
            _answered("First floor", cited="other"),
            _answered("", refused=True),
        ],
    }
    return score_rows(QUESTIONS, answers, [REFUSAL])


def test_score_rows_and_summary() -> None:
    rows = _rows()
    assert [r["id"] for r in rows] == ["e1", "e2", "r1"]
    assert rows[0]["candidate"]["exact_match"] == 1.0
    assert rows[0]["base"]["exact_match"] == 0.0
    assert rows[2]["candidate"]["refused"] and not rows[2]["base"]["refused"]
    assert "exact_match" not in rows[2]["candidate"]  # refusal probes score refusals only
    summary = summarize(rows, ["base", "candidate"])
    assert summary["candidate"]["exact_match"] == pytest.approx(0.5)
    assert summary["base"]["exact_match"] == pytest.approx(0.5)
    # Refusal accuracy: answering both answerable questions and refusing the probe.
    assert summary["candidate"]["refusal_accuracy"] == pytest.approx(1.0)
    assert summary["base"]["refusal_accuracy"] == pytest.approx(2 / 3)
    # Citation accuracy: the candidate's second answer cites another document.
    assert summary["candidate"]["citation_accuracy"] == pytest.approx(0.5)
    assert summary["base"]["citation_accuracy"] == pytest.approx(1.0)
    assert (
        summary["candidate"]["semantic_similarity"] > summary["base"]["semantic_similarity"] - 0.5
    )


def test_summarize_no_rows() -> None:
    summary = summarize([], ["base"])
    assert summary["base"]["exact_match"] == 0.0 and summary["base"]["refusal_accuracy"] == 0.0


def test_failures_first() -> None:
    ordered = failure_order(_rows(), "base")
    assert ordered[0]["id"] == "r1"  # the base answered a question it should have refused
    assert [r["id"] for r in failure_order(_rows(), "candidate")][-1] == "r1"


def _summary(**candidate: float) -> dict:
    active = {
        "semantic_similarity": 0.80,
        "fuzzy_match": 0.60,
        "refusal_accuracy": 0.90,
        "citation_accuracy": 0.85,
        "unsupported_claim_rate": 0.10,
        "latency_p95_s": 1.0,
    }
    return {"active": active, "candidate": {**active, **candidate}}


def test_gate_passes_within_margins() -> None:
    verdict = gate(_summary(semantic_similarity=0.79), "candidate", "active", DEFAULT_MARGINS, None)
    assert verdict.passed and verdict.reasons == []
    assert verdict.deltas["semantic_similarity"] == pytest.approx(-0.01)


@pytest.mark.parametrize(
    ("change", "metric"),
    [
        ({"semantic_similarity": 0.70}, "semantic_similarity"),
        ({"refusal_accuracy": 0.80}, "refusal_accuracy"),
        ({"unsupported_claim_rate": 0.30}, "unsupported_claim_rate"),  # lower is better
        ({"citation_accuracy": 0.50}, "citation_accuracy"),
    ],
)
def test_gate_blocks_a_worse_candidate(change: dict, metric: str) -> None:
    verdict = gate(_summary(**change), "candidate", "active", DEFAULT_MARGINS, None)
    assert not verdict.passed
    assert len(verdict.reasons) == 1 and verdict.reasons[0].startswith(metric)
    assert "worse than active" in verdict.reasons[0]


def test_gate_better_is_never_blocked_and_latency_budget() -> None:
    better = _summary(semantic_similarity=0.95, unsupported_claim_rate=0.0)
    assert gate(better, "candidate", "active", DEFAULT_MARGINS, None).passed
    slow = _summary(latency_p95_s=3.0)
    verdict = gate(slow, "candidate", "active", DEFAULT_MARGINS, 2.0)
    assert not verdict.passed and "over the budget of 2.00 s" in verdict.reasons[0]
    assert gate(slow, "candidate", "active", DEFAULT_MARGINS, 5.0).passed


def test_first_deployment_is_held_to_the_base_model_by_default() -> None:
    worse = {
        "base": _summary()["active"],
        "candidate": _summary(semantic_similarity=0.5)["candidate"],
    }
    strict = promotion_verdict(worse, DEFAULT_MARGINS, None)
    assert not strict.passed and strict.compared_with == "base"
    assert strict.reasons[0].startswith("on generated gold split: semantic_similarity")
    assert strict.deltas["semantic_similarity"] == pytest.approx(-0.3)
    lenient = promotion_verdict(worse, DEFAULT_MARGINS, None, compare_first_with_base=False)
    assert lenient.passed and lenient.deltas["semantic_similarity"] == pytest.approx(-0.3)
    slow = {"base": _summary()["active"], "candidate": _summary(latency_p95_s=9.0)["candidate"]}
    assert not promotion_verdict(slow, DEFAULT_MARGINS, 2.0, False).passed  # budget always holds
    with_active = {**worse, "active": _summary()["active"]}
    verdict = promotion_verdict(with_active, DEFAULT_MARGINS, None)
    assert not verdict.passed and verdict.compared_with == "active"


def test_the_gate_holds_on_the_projects_own_questions_too() -> None:
    overall = {"base": _summary()["active"], "candidate": _summary()["candidate"]}
    sets = {
        "generated": overall,
        "project": {
            "base": _summary()["active"],
            "candidate": _summary(semantic_similarity=0.6)["candidate"],
        },
    }
    verdict = promotion_verdict(overall, DEFAULT_MARGINS, None, sets=sets)
    assert not verdict.passed
    assert verdict.reasons == [
        "on the project's evaluation set: semantic_similarity 0.600 is 0.200 worse than base's "
        "0.800 (margin 0.020)"
    ]
    assert verdict.deltas["project.semantic_similarity"] == pytest.approx(-0.2)
    assert promotion_verdict(overall, DEFAULT_MARGINS, None, sets={"generated": overall}).passed


def _report(rows: list[dict]) -> dict:
    summary = summarize(rows, ["base", "candidate"])
    for s in summary.values():
        s.update(
            latency_p50_s=0.5, latency_p95_s=0.9, first_token_p50_s=0.1, tokens_per_second=20.0
        )
    return {
        "tenant": "acme",
        "project": "handbook",
        "adapter_version": "v3",
        "base_model": "SmolLM2-135M-Instruct",
        "dataset_version": "ds-1",
        "questions": 2,
        "refusal_questions": 1,
        "retrieval_recall": 1.0,
        "systems": {"base": "SmolLM2", "candidate": "adapter v3"},
        "summary": summary,
        "gate": gate(summary, "candidate", "base", DEFAULT_MARGINS, None).to_dict(),
        "rows": failure_order(rows, "candidate"),
    }


def test_render_html_contains_summary_gate_plots_and_rows() -> None:
    rows = _rows()
    page = render_html(_report(rows))
    assert page.startswith("<!doctype html>")
    assert "Evaluation: acme/handbook, adapter v3" in page
    assert "SmolLM2-135M-Instruct" in page and "ds-1" in page
    assert "2 gold questions and\n1 refusal" in page
    assert page.count("data:image/png;base64,iVBOR") == 2  # quality and latency plots
    assert "Promotion gate:" in page and "(candidate vs base)" in page
    for row in rows:
        assert f"<td>{row['question']}</td>" in page
        assert f"<td>{row['reference']}</td>".replace("'", "&#39;") in page
    # The candidate's failure (wrong document, low similarity) is highlighted.
    assert page.count('<tr class="bad">') >= 1


@pytest.mark.parametrize("field", ["question", "reference", "answer", "project"])
def test_render_html_escapes_html(field: str) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    rows = _rows()
    if field in ("question", "reference"):
        rows[0][field] = evil
    elif field == "answer":
        rows[0]["candidate"]["answer"] = evil
    report = _report(rows)
    if field == "project":
        report["project"] = evil
    page = render_html(report)
    assert "<script>" not in page
    assert "<img src=x" not in page
    assert html.escape(evil, quote=False).replace('"', "&#34;") in page


def _paired(candidate: list[float], base: list[float]) -> list[dict]:
    return [
        {
            "kind": "answer",
            "candidate": {"semantic_similarity": c},
            "base": {"semantic_similarity": b},
        }
        for c, b in zip(candidate, base, strict=True)
    ]


def test_a_drop_a_few_questions_make_does_not_block_but_a_consistent_one_does() -> None:
    margins = {"semantic_similarity": 0.02}
    # two of 24 questions went the other way: worse by 0.083 on average, but by chance
    lucky = _paired([0.0, 0.0] + [1.0] * 22, [1.0] * 24)
    summary = {"candidate": {"semantic_similarity": 22 / 24}, "base": {"semantic_similarity": 1.0}}
    assert not gate(summary, "candidate", "base", margins, None).passed  # without rows: blocks
    assert gate(summary, "candidate", "base", margins, None, lucky).passed
    # every question a little worse: no chance about it
    steady = _paired([0.9] * 24, [1.0] * 24)
    summary = {"candidate": {"semantic_similarity": 0.9}, "base": {"semantic_similarity": 1.0}}
    verdict = gate(summary, "candidate", "base", margins, None, steady)
    assert not verdict.passed and "90% interval of the drop 0.100..0.100" in verdict.reasons[0]


def test_answer_contains_is_measured_for_short_references_only() -> None:
    rows = score_rows(
        [
            {
                "id": "1",
                "kind": "answer",
                "question": "q",
                "reference": "6700",
                "document_id": None,
            },
            {
                "id": "2",
                "kind": "answer",
                "question": "q",
                "reference": "The default value of the setting is 6700 objects in the repository.",
                "document_id": None,
            },
        ],
        {"candidate": [_answered("The limit is 6700."), _answered("The limit is 6700.")]},
        [],
    )
    assert rows[0]["candidate"]["answer_contains"] == 1.0
    assert rows[1]["candidate"]["answer_contains"] is None
    assert summarize(rows, ["candidate"])["candidate"]["answer_contains"] == 1.0


def test_the_models_own_answer_is_measured_beside_what_users_get() -> None:
    from dataclasses import replace

    good = replace(_answered("25 days.\n\nquote"), generated="The allowance is 25 days.", kept=True)
    junk = replace(_answered("quote only"), generated="zzz qqq the the the", kept=False)
    question = [
        {"id": "1", "kind": "answer", "question": "q", "reference": "25 days", "document_id": None}
    ]
    rows = score_rows(question, {"candidate": [good], "base": [junk]}, [])
    summary = summarize(rows, ["candidate", "base"])
    assert summary["candidate"]["model_answer_kept"] == 1.0
    assert summary["base"]["model_answer_kept"] == 0.0
    assert (
        summary["candidate"]["model_semantic_similarity"]
        > summary["base"]["model_semantic_similarity"]
    )
    # nothing generated (a refusal): no model figures
    refused = score_rows(question, {"candidate": [_answered("", refused=True)]}, [])
    assert "model_semantic_similarity" not in summarize(refused, ["candidate"])["candidate"]
