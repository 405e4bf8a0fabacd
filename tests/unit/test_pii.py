from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from presidio_analyzer import AnalyzerEngine
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from assets.pii.screen import (
    DEFAULT_ENTITIES,
    MAX_PIECE_CHARS,
    NLP_CONFIGURATION,
    PHONE_CONTEXT_EXTRA,
    PLACEHOLDER_RE,
    CustomRecognizer,
    Finding,
    PiiScreener,
    apply_policy,
    nlp_engine,
    residual_findings,
    residual_pii,
    split_pieces,
    tune_analyzer,
)

ROOT = Path(__file__).resolve().parents[2]
EMPLOYEE_ID = CustomRecognizer(
    name="employee id", entity_type="EMPLOYEE_ID", pattern=r"EMP-\d{6}", context=("badge",)
)
PII_SENTENCE = (
    "Contact Sarah Connor at sarah.connor@example.com or phone +44 20 7946 0958 "
    "about the 2024 budget."
)
STOCK_TEXTS = [
    PII_SENTENCE,
    "The case was escalated by Chen Nguyen. Reimbursement was sent to the bank.",
    "Her phone in the London office is +44 20 7946 0958.",
    "James Okafor's mobile number is 07700 900461 and his manager is Emma Walsh.\n\n"
    "The call on 020 7946 0321 went unanswered. Reimburse IBAN GB82 WEST 1234 5698 7654 32.",
    " ".join(
        f"Case {i}: {name} can be reached by phone on +1 415 555 01{i:02d}."
        for i, name in enumerate(["Liam Garcia", "Fatima Ito", "Chen Nguyen"] * 12)
    ),
]
FILLER = "The quarterly report is due at the end of each month and goes to the finance team.\n\n"


@pytest.fixture(scope="module")
def screener() -> PiiScreener:
    return PiiScreener(custom=[EMPLOYEE_ID])


def _found(screener: PiiScreener, text: str) -> set[tuple[str, str]]:
    return {(f.entity_type, text[f.start : f.end]) for f in screener.analyze(text)}


@pytest.mark.parametrize(
    ("text", "entity_type", "value"),
    [
        pytest.param(
            "Write to jane.doe@example.com today.",
            "EMAIL_ADDRESS",
            "jane.doe@example.com",
            id="email",
        ),
        pytest.param("Phone: +44 20 7946 0958", "PHONE_NUMBER", "+44 20 7946 0958", id="phone-uk"),
        pytest.param(
            "Call her mobile on (212) 555-0123 after lunch.",
            "PHONE_NUMBER",
            "(212) 555-0123",
            id="phone-us",
        ),
        pytest.param(
            "Tel: +44 20 7946 0958", "PHONE_NUMBER", "+44 20 7946 0958", id="phone-tel-label"
        ),
        pytest.param(
            "Yesterday Sarah Connor signed the contract.", "PERSON", "Sarah Connor", id="person"
        ),
        pytest.param(
            "The card 4111 1111 1111 1111 was cancelled.",
            "CREDIT_CARD",
            "4111 1111 1111 1111",
            id="credit-card",
        ),
        pytest.param(
            "My social security number is 536-22-8726.", "US_SSN", "536-22-8726", id="ssn"
        ),
        pytest.param(
            "Reimburse IBAN GB82 WEST 1234 5698 7654 32 today.",
            "IBAN_CODE",
            "GB82 WEST 1234 5698 7654 32",
            id="iban",
        ),
        pytest.param("Her NHS number is 943 476 5919.", "UK_NHS", "943 476 5919", id="nhs"),
        pytest.param(
            "The server at 192.168.10.24 was patched.", "IP_ADDRESS", "192.168.10.24", id="ip"
        ),
        pytest.param(
            "Badge EMP-004521 was issued to the new starter.",
            "EMPLOYEE_ID",
            "EMP-004521",
            id="custom-regex",
        ),
    ],
)
def test_detects_pii(screener: PiiScreener, text: str, entity_type: str, value: str) -> None:
    assert (entity_type, value) in _found(screener, text)


def test_text_without_pii_has_no_findings(screener: PiiScreener) -> None:
    text = "Annual leave requests must be submitted at least 14 days in advance."
    assert screener.analyze(text) == []
    assert screener.analyze("") == []


def test_findings_are_sorted_with_exact_offsets(screener: PiiScreener) -> None:
    findings = screener.analyze(PII_SENTENCE)
    assert [(f.entity_type, PII_SENTENCE[f.start : f.end]) for f in findings] == [
        ("PERSON", "Sarah Connor"),
        ("EMAIL_ADDRESS", "sarah.connor@example.com"),
        ("PHONE_NUMBER", "+44 20 7946 0958"),
    ]
    assert all(0.5 <= f.score <= 1.0 for f in findings)


def test_custom_entities_join_the_defaults(screener: PiiScreener) -> None:
    assert screener.entities == (*DEFAULT_ENTITIES, "EMPLOYEE_ID")
    assert "EMPLOYEE_ID" not in PiiScreener().entities


def test_entities_restrict_what_is_reported() -> None:
    emails_only = PiiScreener(entities=["EMAIL_ADDRESS"])
    assert {f.entity_type for f in emails_only.analyze(PII_SENTENCE)} == {"EMAIL_ADDRESS"}


def test_the_engine_is_loaded_once_and_shared(screener: PiiScreener) -> None:
    plain, again = PiiScreener(), PiiScreener()
    assert plain._analyzer is again._analyzer
    assert plain._analyzer is not screener._analyzer
    assert plain._analyzer.nlp_engine is screener._analyzer.nlp_engine is nlp_engine()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"pattern": r"EMP-(\d{6}"}, "invalid regex", id="unbalanced-group"),
        pytest.param({"pattern": r"EMP-\d{6}["}, "invalid regex", id="open-class"),
        pytest.param({"pattern": r"\d*"}, "empty string", id="matches-empty"),
        pytest.param({"entity_type": "employee_id"}, "entity_type", id="lowercase-type"),
        pytest.param({"entity_type": "E"}, "entity_type", id="too-short-type"),
        pytest.param({"entity_type": "1D_NUMBER"}, "entity_type", id="starts-with-digit"),
        pytest.param({"entity_type": "EMPLOYEE-ID"}, "entity_type", id="dash-in-type"),
        pytest.param({"score": 0.0}, "score", id="zero-score"),
        pytest.param({"score": 1.5}, "score", id="score-above-one"),
        pytest.param({"name": " "}, "name", id="blank-name"),
    ],
)
def test_invalid_custom_recognizer_is_rejected(fields: dict, message: str) -> None:
    data = {"name": "employee id", "entity_type": "EMPLOYEE_ID", "pattern": r"EMP-\d{6}"}
    data.update(fields)
    with pytest.raises(ValueError, match=message):
        CustomRecognizer(**data)
    with pytest.raises(ValueError, match=message):
        CustomRecognizer.from_dict(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param({"name": "x", "entity_type": "EMPLOYEE_ID"}, "lacks pattern", id="missing"),
        pytest.param(
            {"name": "x", "entity_type": "EMPLOYEE_ID", "pattern": "a", "flags": "i"},
            "unknown keys flags",
            id="unknown-key",
        ),
        pytest.param(
            {"name": "x", "entity_type": "EMPLOYEE_ID", "pattern": "a", "context": "badge"},
            "not a string",
            id="context-string",
        ),
        pytest.param(
            {"name": "x", "entity_type": "EMPLOYEE_ID", "pattern": "a", "score": "high"},
            "not a number",
            id="score-text",
        ),
    ],
)
def test_custom_recognizer_from_dict_rejects_bad_json(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CustomRecognizer.from_dict(data)


def test_custom_recognizer_round_trips_through_json() -> None:
    data = EMPLOYEE_ID.to_dict()
    assert data["context"] == ["badge"]
    assert CustomRecognizer.from_dict(data) == EMPLOYEE_ID


def test_screener_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="unique"):
        PiiScreener(custom=[EMPLOYEE_ID, EMPLOYEE_ID])
    with pytest.raises(ValueError, match="no recognizer"):
        PiiScreener(entities=["SHOE_SIZE"])
    with pytest.raises(ValueError, match="language 'de'"):
        PiiScreener(language="de")
    with pytest.raises(ValueError, match="score_threshold"):
        PiiScreener(score_threshold=1.5)


def test_custom_entity_is_redacted_with_its_placeholder(screener: PiiScreener) -> None:
    text = "Badge EMP-004521 was issued to the new starter."
    assert screener.redact(text, screener.analyze(text)) == (
        "Badge <EMPLOYEE_ID> was issued to the new starter."
    )


def test_redact_keeps_other_text_and_removes_every_pii_string(screener: PiiScreener) -> None:
    redacted = screener.redact(PII_SENTENCE, screener.analyze(PII_SENTENCE))
    assert redacted == (
        "Contact <PERSON> at <EMAIL_ADDRESS> or phone <PHONE_NUMBER> about the 2024 budget."
    )
    for value in ("Sarah", "Connor", "sarah.connor", "example.com", "7946", "0958"):
        assert value not in redacted


def test_redact_without_findings_returns_the_text(screener: PiiScreener) -> None:
    assert screener.redact(PII_SENTENCE, []) == PII_SENTENCE


@pytest.mark.parametrize(
    ("text", "findings", "expected"),
    [
        pytest.param(
            "Call 943 476 5919 now",
            [Finding("PHONE_NUMBER", 5, 17, 0.4), Finding("UK_NHS", 5, 17, 1.0)],
            "Call <UK_NHS> now",
            id="same-span-higher-score-wins",
        ),
        pytest.param(
            "jane.doe@example.com!",
            [Finding("EMAIL_ADDRESS", 0, 20, 1.0), Finding("PERSON", 0, 8, 0.85)],
            "<EMAIL_ADDRESS>!",
            id="containing-span-wins",
        ),
        pytest.param(
            "abcdefghijklmnopqrstuvwxyz",
            [Finding("PERSON", 0, 10, 0.85), Finding("EMAIL_ADDRESS", 5, 20, 1.0)],
            "<PERSON><EMAIL_ADDRESS>uvwxyz",
            id="partial-overlap-trims-the-lower-score",
        ),
    ],
)
def test_redact_resolves_overlapping_findings(
    screener: PiiScreener, text: str, findings: list[Finding], expected: str
) -> None:
    assert screener.redact(text, findings) == expected


def test_redact_removes_every_covered_character_and_keeps_the_rest(
    screener: PiiScreener,
) -> None:
    # Random overlapping findings over text of distinct characters.
    alphabet = "".join(chr(0x4E00 + i) for i in range(60))
    rng = random.Random(3)
    for _ in range(300):
        text = alphabet[: rng.randint(5, 60)]
        findings = []
        for _ in range(rng.randint(1, 5)):
            start = rng.randrange(len(text))
            end = rng.randint(start + 1, len(text))
            entity = rng.choice(["PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "UK_NHS"])
            findings.append(Finding(entity, start, end, rng.choice([0.4, 0.85, 1.0])))
        covered = {i for f in findings for i in range(f.start, f.end)}
        redacted = screener.redact(text, findings)
        assert [ch for ch in redacted if ch in alphabet] == [
            ch for i, ch in enumerate(text) if i not in covered
        ], (text, findings, redacted)
        # Nothing but whole placeholders and the kept characters.
        assert set(PLACEHOLDER_RE.sub("", redacted)) <= set(alphabet)


def test_summarize_counts_per_type(screener: PiiScreener) -> None:
    text = PII_SENTENCE + " Or e-mail hr@example.com."
    assert screener.summarize(screener.analyze(text)) == {
        "EMAIL_ADDRESS": 2,
        "PERSON": 1,
        "PHONE_NUMBER": 1,
    }
    assert screener.summarize([]) == {}


def test_finding_round_trips_through_json() -> None:
    finding = Finding("PERSON", 8, 20, 0.85)
    assert finding.to_dict() == {"entity_type": "PERSON", "start": 8, "end": 20, "score": 0.85}
    assert Finding.from_dict(finding.to_dict()) == finding


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        pytest.param("aaaa\n\nbbbb\ncccc", 12, ["aaaa\n\n", "bbbb\ncccc"], id="paragraph"),
        pytest.param("aaaa\nbbbb cccc", 12, ["aaaa\n", "bbbb cccc"], id="line"),
        pytest.param("Aaa bb. Ccc dd ee", 12, ["Aaa bb. ", "Ccc dd ee"], id="sentence"),
        pytest.param("aaaa bbbb cccc", 12, ["aaaa bbbb ", "cccc"], id="word"),
        pytest.param("a" * 25, 10, ["a" * 10, "a" * 10, "a" * 5], id="hard-cut"),
        pytest.param("short", 12, ["short"], id="fits"),
        pytest.param("", 12, [], id="empty"),
    ],
)
def test_split_pieces(text: str, limit: int, expected: list[str]) -> None:
    pieces = split_pieces(text, limit)
    assert [piece for _, piece in pieces] == expected
    assert all(text[offset : offset + len(piece)] == piece for offset, piece in pieces)


def test_long_text_offsets_across_pieces(screener: PiiScreener) -> None:
    near_end = "Questions go to boundary.person@example.com.\n\n"
    # Enough filler that the e-mail's paragraph ends just before the first piece's limit.
    first = FILLER * ((MAX_PIECE_CHARS - len(near_end)) // len(FILLER)) + near_end
    after_split = "deputy.person@example.com covers the team while the manager is on leave.\n\n"
    assert len(first) + len(after_split) > MAX_PIECE_CHARS
    middle = after_split + FILLER * (150_000 // len(FILLER))
    late = "Write to late.person@example.com for archive access.\n\n"
    text = first + middle + late + FILLER * 3
    assert len(text) > 150_000

    pieces = split_pieces(text)
    assert len(pieces) >= 8
    assert all(len(piece) <= MAX_PIECE_CHARS for _, piece in pieces)
    assert "".join(piece for _, piece in pieces) == text
    assert pieces[1][0] == len(first)  # the split falls right after the first e-mail

    emails = [(f.start, f.end) for f in screener.analyze(text) if f.entity_type == "EMAIL_ADDRESS"]
    expected = [
        (text.index(value), text.index(value) + len(value))
        for value in (
            "boundary.person@example.com",
            "deputy.person@example.com",
            "late.person@example.com",
        )
    ]
    assert emails == expected
    assert expected[2][0] > 150_000


def test_analyze_many_equals_analyze_per_text(screener: PiiScreener) -> None:
    texts = [
        PII_SENTENCE,
        "",
        "Badge EMP-004521 was issued to Priya Patel.",
        "Nothing personal in this sentence.",
        "My social security number is 536-22-8726. " * 3,
        (FILLER + "Phone: +44 20 7946 0958\n\n") * 300,  # several pieces
        "Her NHS number is 943 476 5919. The server at 192.168.10.24 was patched.",
    ]
    many = screener.analyze_many(texts, batch_size=3)
    assert many == [screener.analyze(text) for text in texts]
    assert len(many[5]) == 300
    assert many[1] == [] and many[3] == []


def test_same_findings_as_stock_presidio(screener: PiiScreener) -> None:
    # The trimmed spaCy pipeline and the indexed context look-up change speed, not results:
    # a stock engine given the same recognisers (tune_analyzer) finds what ours finds before
    # the precision rules.
    stock = AnalyzerEngine(
        nlp_engine=NlpEngineProvider(nlp_configuration=NLP_CONFIGURATION).create_engine(),
        supported_languages=["en"],
    )
    tune_analyzer(stock)
    phone = [r for r in stock.registry.recognizers if isinstance(r, PhoneRecognizer)]
    assert len(phone) == 1 and set(PHONE_CONTEXT_EXTRA) <= set(phone[0].context)
    plain = PiiScreener()
    entities = list(plain.entities)
    for text in STOCK_TEXTS:
        theirs = stock.analyze(text, language="en", entities=entities, score_threshold=0.5)
        ours = plain.analyze_many([text], refine=False)[0]
        assert {(f.entity_type, f.start, f.end, f.score) for f in ours} == {
            (r.entity_type, r.start, r.end, round(r.score, 4)) for r in theirs
        }


@pytest.mark.parametrize(
    ("policy", "text", "status", "redacted"),
    [
        pytest.param("redact", PII_SENTENCE, "redacted", True, id="redact"),
        pytest.param("redact", "Nothing personal here.", "clean", False, id="redact-clean"),
        pytest.param("block", PII_SENTENCE, "blocked", False, id="block"),
        pytest.param("block", "Nothing personal here.", "clean", False, id="block-clean"),
        pytest.param("allow", PII_SENTENCE, "allowed", False, id="allow"),
        pytest.param("allow", "Nothing personal here.", "allowed", False, id="allow-clean"),
    ],
)
def test_apply_policy(
    screener: PiiScreener, policy: str, text: str, status: str, redacted: bool
) -> None:
    findings = screener.analyze(text)
    outcome = apply_policy(policy, text, findings, screener)
    assert outcome.status == status
    assert outcome.summary == screener.summarize(findings)
    if redacted:
        assert outcome.text == screener.redact(text, findings) != text
        assert "<PERSON>" in outcome.text
    else:
        assert outcome.text == text


def test_apply_policy_rejects_unknown_policy(screener: PiiScreener) -> None:
    with pytest.raises(ValueError, match="redact, block, allow"):
        apply_policy("quarantine", PII_SENTENCE, [], screener)


def test_residual_pii_is_zero_after_redaction(screener: PiiScreener) -> None:
    texts = [
        PII_SENTENCE,
        "Badge EMP-004521 was issued to Priya Patel.",
        "Her NHS number is 943 476 5919.",
        "Nothing personal here.",
    ]
    assert residual_pii(texts, screener) >= 6
    redacted = [
        apply_policy("redact", text, findings, screener).text
        for text, findings in zip(texts, screener.analyze_many(texts), strict=True)
    ]
    assert residual_pii(redacted, screener) == 0
    assert residual_findings(redacted, screener) == [[], [], [], []]


def test_residual_pii_ignores_matches_inside_placeholders() -> None:
    # A tenant regex that also matches a placeholder's own letters.
    codes = PiiScreener(custom=[CustomRecognizer("codes", "PROJECT_CODE", r"\bPERSON\b")])
    assert residual_pii(["Approved by <PERSON> today."], codes) == 0
    assert residual_pii(["Approved by PERSON today."], codes) == 1


def test_single_threaded_openblas_path_finds_the_same(screener: PiiScreener) -> None:
    # With OPENBLAS_NUM_THREADS=1 the NER runs on numpy's matrix products instead of blis.
    script = textwrap.dedent(
        """
        import json
        import sys

        from assets.pii.screen import PiiScreener, nlp_engine

        ner = nlp_engine().nlp["en"].get_pipe("ner")
        assert not any(node.ops.use_blis for node in ner.model.walk())
        found = PiiScreener().analyze_many(json.load(sys.stdin))
        print(json.dumps([[f.to_dict() for f in texts] for texts in found]))
        """
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        input=json.dumps(STOCK_TEXTS),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = [[f.to_dict() for f in texts] for texts in PiiScreener().analyze_many(STOCK_TEXTS)]
    assert json.loads(result.stdout) == expected


def test_no_network_access_for_email_validation(tmp_path: Path) -> None:
    # A fresh interpreter, a fresh tldextract cache and a socket layer that records and refuses
    # every connection: the e-mail recognizer must still work, without a single attempt.
    script = textwrap.dedent(
        """
        import socket

        attempts = []

        def refuse(*args, **kwargs):
            attempts.append(args[:1])
            raise OSError("network disabled by the test")

        socket.getaddrinfo = refuse
        socket.create_connection = refuse
        socket.socket.connect = refuse

        from assets.pii.screen import PiiScreener

        text = "Write to jane.doe@example.com today."
        found = [(f.entity_type, text[f.start:f.end]) for f in PiiScreener().analyze(text)]
        assert found == [("EMAIL_ADDRESS", "jane.doe@example.com")], found
        assert attempts == [], attempts

        import tldextract

        url = "https://publicsuffix.org/list/public_suffix_list.dat"
        tldextract.TLDExtract(cache_dir=None, suffix_list_urls=[url])("www.example.com")
        assert attempts, "the guard missed tldextract's fetch"
        print("no network")
        """
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"
    }
    env.update(TLDEXTRACT_CACHE=str(tmp_path / "tldextract"), PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "no network"
