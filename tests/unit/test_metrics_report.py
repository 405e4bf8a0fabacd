from __future__ import annotations

import html

import pytest

from assets.evaluation.metrics import exact_match, fuzzy_match, mean, normalize_answer
from assets.evaluation.report import render_html, score, summarize

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


def test_score() -> None:
    assert score("25 days.", "25 days") == {
        "answer": "25 days.",
        "exact_match": 1.0,
        "fuzzy_match": pytest.approx(1.0),
    }
    s = score("26 days", "25 days")
    assert s["exact_match"] == 0.0
    assert 0.0 < s["fuzzy_match"] < 1.0


def _rows() -> list[dict]:
    return [
        {
            "id": "e1",
            "question": "How many days of leave?",
            "reference": "25 days",
            "base": score("I do not know", "25 days"),
            "adapter": score("25 days", "25 days"),
        },
        {
            "id": "e2",
            "question": "Where is the canteen?",
            "reference": "Ground floor",
            "base": score("Ground floor", "Ground floor"),
            "adapter": score("First floor", "Ground floor"),
        },
    ]


def test_summarize_means_per_model() -> None:
    rows = _rows()
    summary = summarize(rows, ["base", "adapter"])
    assert set(summary) == {"base", "adapter"}
    assert summary["base"]["exact_match"] == pytest.approx(0.5)
    assert summary["adapter"]["exact_match"] == pytest.approx(0.5)
    assert summary["adapter"]["fuzzy_match"] == pytest.approx(
        (1.0 + rows[1]["adapter"]["fuzzy_match"]) / 2
    )
    assert summary["adapter"]["fuzzy_match"] > summary["base"]["fuzzy_match"]


def test_summarize_no_rows() -> None:
    assert summarize([], ["base", "adapter"]) == {
        "base": {"exact_match": 0.0, "fuzzy_match": 0.0},
        "adapter": {"exact_match": 0.0, "fuzzy_match": 0.0},
    }


def _report(rows: list[dict]) -> dict:
    return {
        "tenant": "acme",
        "project": "handbook",
        "adapter_version": "v3",
        "base_model": "SmolLM2-135M-Instruct",
        "dataset_version": "ds-1",
        "questions": len(rows),
        "summary": summarize(rows, ["base", "adapter"]),
        "rows": rows,
    }


def test_render_html_contains_header_summary_and_question_rows() -> None:
    rows = _rows()
    page = render_html(_report(rows))
    assert page.startswith("<!doctype html>")
    assert "Evaluation: acme/handbook, adapter v3" in page
    assert "SmolLM2-135M-Instruct" in page
    assert "ds-1" in page
    assert "2 gold questions" in page
    assert '<td>base</td><td class="num">0.500</td>' in page
    for row in rows:
        assert f"<td>{row['question']}</td>" in page
        assert f"<td>{row['reference']}</td>" in page
        assert f"<td>{row['adapter']['answer']}</td>" in page
        assert f"<td>{row['base']['answer']}</td>" in page
    # Rows the adapter got wrong are highlighted, the others are not.
    assert page.count('<tr class="bad">') == 1
    assert page.count('<tr class="">') == 1


@pytest.mark.parametrize(
    "field", ["question", "reference", "base_answer", "adapter_answer", "project"]
)
def test_render_html_escapes_html(field: str) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    rows = _rows()
    if field == "question":
        rows[0]["question"] = evil
    elif field == "reference":
        rows[0]["reference"] = evil
    elif field == "base_answer":
        rows[0]["base"] = score(evil, "25 days")
    elif field == "adapter_answer":
        rows[0]["adapter"] = score(evil, "25 days")
    report = _report(rows)
    if field == "project":
        report["project"] = evil
    page = render_html(report)
    assert "<script>" not in page
    assert "<img" not in page
    assert html.escape(evil, quote=False).replace('"', "&#34;") in page


def test_render_html_with_no_rows() -> None:
    page = render_html(_report([]))
    assert "0 gold questions" in page
    assert '<td class="num">0.000</td>' in page
