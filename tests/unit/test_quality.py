from __future__ import annotations

import re

import pytest

from assets.quality.score import QualityReport, detect_language, score_document

ENGLISH = (
    "The committee reviewed the annual budget in detail and agreed that the new training "
    "programme should start in the spring. Each department will nominate two people, and the "
    "finance team will report on the costs at the next meeting, which is planned for early "
    "April.\nStaff who travel for the programme can claim their expenses through the usual "
    "form; receipts must be attached, and claims older than three months will not be paid."
)
GERMAN = (
    "Der Ausschuss hat den Jahreshaushalt im Detail geprüft und beschlossen, dass das neue "
    "Schulungsprogramm im Frühjahr beginnen soll. Jede Abteilung benennt zwei Personen, und "
    "das Finanzteam berichtet bei der nächsten Sitzung, die für Anfang April geplant ist, "
    "über die Kosten."
)
FRENCH = (
    "Le comité a examiné le budget annuel en détail et a convenu que le nouveau programme de "
    "formation devrait commencer au printemps. Chaque service désignera deux personnes, et "
    "l'équipe financière présentera les coûts lors de la prochaine réunion, prévue début avril."
)
FIGURES = (
    "Revenue rose to 12,400 EUR in March 2023, 13,100 EUR in April and 14,900 EUR in May (+13.7%). "
    "Costs were 8,210 EUR, 8,340 EUR and 9,020 EUR; the margin reached 31.4% by 30/06/2023. "
    "Invoices 2023-0412, 2023-0413 and 2023-0588 (total 4,615.20 EUR) remain open after 45 days."
)
SYMBOLS = "%%% 12 ## 45.6 | -- || 99 ** 33 @@ 7/8 <> {} [] 0x1F ;; :: " * 5
# What a PDF font without a Unicode map extracts to: letters, but no language.
GARBLED = "".join(chr((ord(ch) - 96) % 26 + 97) if ch.islower() else ch for ch in ENGLISH)
REPEATED_LINES = "\n".join(["Confidential - do not distribute"] * 12 + ENGLISH.splitlines())


def _reason(report: QualityReport, pattern: str) -> str:
    matching = [reason for reason in report.reasons if re.search(pattern, reason)]
    assert matching, f"no reason matching {pattern!r} in {report.reasons}"
    return matching[0]


def test_clean_english_prose_scores_high_with_no_reasons() -> None:
    report = score_document(ENGLISH)
    assert report.score >= 0.95
    assert report.reasons == []
    assert report.language == "en"
    assert report.signals["words"] > 60
    assert report.signals["alpha_ratio"] > 0.9


@pytest.mark.parametrize(
    ("text", "kwargs", "pattern"),
    [
        pytest.param(
            "Quarterly report, final version.",
            {},
            r"^too short \(4 words, fewer than 30\)$",
            id="short",
        ),
        pytest.param(SYMBOLS, {}, r"^mostly non-alphabetic \(ratio 0\.\d\d\)$", id="symbols"),
        pytest.param(
            FIGURES,
            {},
            r"^many non-alphabetic characters \(ratio 0\.\d\d\)$",
            id="numbers",
        ),
        pytest.param(
            REPEATED_LINES,
            {},
            r"^repeated lines \(\d+% of lines repeat an earlier line\)$",
            id="repeated-lines",
        ),
        pytest.param(
            "buy now and save " * 20 + ENGLISH,
            {},
            r"^repetitive wording \(the most repeated \d-word phrase covers \d+% of the text\)$",
            id="repeated-phrase",
        ),
        pytest.param(
            GARBLED,
            {},
            r"^no recognisable language, likely garbled text \([01]\.\d\d\)$",
            id="garbled",
        ),
        pytest.param(
            ENGLISH, {"ocr_confidence": 0.55}, r"^low OCR confidence \(0\.55\)$", id="low-ocr"
        ),
        pytest.param(GERMAN, {}, r"^language is de \(1\.00\), expected en$", id="german"),
        pytest.param(
            ENGLISH, {"language": "fr"}, r"^language is fr, expected en$", id="given-language"
        ),
    ],
)
def test_each_problem_lowers_the_score_and_says_why(text: str, kwargs: dict, pattern: str) -> None:
    report = score_document(text, **kwargs)
    assert report.score < 0.9
    assert report.score < score_document(ENGLISH).score
    _reason(report, pattern)


def test_gibberish_symbols_score_near_zero() -> None:
    assert score_document(SYMBOLS).score <= 0.1


def test_expected_language_accepts_it() -> None:
    report = score_document(GERMAN, expected_languages=("de", "en"))
    assert report.reasons == []
    assert report.language == "de"
    assert score_document(GERMAN, expected_languages=("de-AT",)).reasons == []
    assert score_document(GERMAN, expected_languages=()).reasons == []


def test_garbled_text_is_refused_even_when_any_language_is_expected() -> None:
    assert score_document(ENGLISH, expected_languages=()).reasons == []
    report = score_document(GARBLED, expected_languages=())
    assert report.score < 0.5
    _reason(report, "garbled")
    assert report.language == "und"
    assert detect_language(GARBLED) == ("und", 0.0)


def test_given_language_skips_detection() -> None:
    report = score_document(GERMAN, language="en-GB")
    assert report.reasons == []
    assert report.language == "en"


def test_problems_compound() -> None:
    both = score_document(REPEATED_LINES, ocr_confidence=0.5)
    assert both.score < min(
        score_document(REPEATED_LINES).score, score_document(ENGLISH, ocr_confidence=0.5).score
    )
    assert len(both.reasons) >= 2


def test_empty_text() -> None:
    assert score_document("  \n ") == QualityReport(0.0, ["empty text"], {"words": 0.0})


def test_score_is_deterministic() -> None:
    assert score_document(REPEATED_LINES, ocr_confidence=0.7) == score_document(
        REPEATED_LINES, ocr_confidence=0.7
    )


@pytest.mark.parametrize("confidence", [-0.1, 1.5, 87.0])
def test_ocr_confidence_outside_unit_range_is_refused(confidence: float) -> None:
    with pytest.raises(ValueError, match="ocr_confidence"):
        score_document(ENGLISH, ocr_confidence=confidence)


def _non_increasing(scores: list[float]) -> bool:
    return all(later <= earlier for earlier, later in zip(scores, scores[1:], strict=False))


def test_monotone_in_ocr_confidence() -> None:
    scores = [score_document(ENGLISH, ocr_confidence=c / 20).score for c in range(20, -1, -1)]
    assert _non_increasing(scores)
    assert scores[0] > scores[-1]


def test_monotone_in_length() -> None:
    words = ENGLISH.split()
    # The language is given so that only the length changes.
    scores = [
        score_document(" ".join(words[:n]), language="en").score for n in range(len(words), 0, -1)
    ]
    assert _non_increasing(scores)
    assert scores[0] == 1.0
    assert scores[-1] < 0.2


def test_monotone_in_share_of_letters() -> None:
    scores = [
        score_document(ENGLISH + " 1234 %%" * junk, language="en").score
        for junk in range(0, 200, 5)
    ]
    assert _non_increasing(scores)
    assert scores[0] > scores[-1]


def test_monotone_in_repeated_lines() -> None:
    lines = ENGLISH.splitlines()
    scores = [
        score_document(
            "\n".join(lines + ["Page footer, internal use only"] * copies), language="en"
        ).score
        for copies in range(0, 30)
    ]
    assert _non_increasing(scores)
    assert scores[0] > scores[-1]


def test_monotone_in_expected_language() -> None:
    assert (
        score_document(ENGLISH, language="en").score > score_document(ENGLISH, language="de").score
    )


@pytest.mark.parametrize(
    ("text", "language"),
    [
        pytest.param(ENGLISH, "en", id="en"),
        pytest.param(GERMAN, "de", id="de"),
        pytest.param(FRENCH, "fr", id="fr"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    detected, probability = detect_language(text)
    assert detected == language
    assert 0.9 < probability <= 1.0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ok",
        "12 34 56 78 90 -- ++ == 12 34 56 78 90",
        "§§§ ¶¶¶ ### 1234",
        "Q1 2023: 12,400; Q2 2023: 13,100; Q3 2023: 14,900; Q4 2023: 15,200 (total 55,600 EUR, +8.2%).",
    ],
)
def test_detect_language_needs_letters(text: str) -> None:
    assert detect_language(text) == ("und", 0.0)


def test_detect_language_samples_long_documents() -> None:
    detected, probability = detect_language(GERMAN * 2000)
    assert detected == "de"
    assert probability > 0.9
