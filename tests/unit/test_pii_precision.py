"""PiiScreener's precision rules, built-in recognisers, allow-list, entity choice and masked
snippets: for each rule, what must still be found and what must no longer be."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path

import phonenumbers
import pytest

from assets.failures import StageFailure
from assets.pii.recognizers import BUILTIN_ENTITIES, validate_allow_terms, validate_entities
from assets.pii.screen import (
    DEFAULT_ENTITIES,
    INTERNATIONAL_PHONE_SCORE,
    NATIONAL_FORMAT_PHONE_SCORE,
    AllowList,
    CustomRecognizer,
    Finding,
    PiiScreener,
    english_lexicon,
    mask,
    masked_snippet,
    masked_snippets,
    phone_score,
    refine_findings,
)
from assets.privacy.assets import screening_config
from assets.privacy.screening import ScreeningConfig, screen_texts


@pytest.fixture(scope="module")
def screener() -> PiiScreener:
    return PiiScreener()


def _found(screener: PiiScreener, text: str) -> set[tuple[str, str]]:
    return {(f.entity_type, text[f.start : f.end]) for f in screener.analyze(text)}


def _kept(text: str, value: str, entity: str = "PERSON", occurrence: int = 0) -> bool:
    """Whether the rules keep a finding of `entity` on the `occurrence`-th `value` in `text`."""
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(value, start + 1)
    finding = Finding(entity, start, start + len(value), 0.85)
    return finding in refine_findings(text, [finding])


# --- PERSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("Yesterday Sarah Connor signed the contract.", "Sarah Connor", id="plain"),
        pytest.param("Please ask Oluwaseun Adeyemi about it.", "Oluwaseun Adeyemi", id="yoruba"),
        pytest.param("The review went to Chen Wei last week.", "Chen Wei", id="family-first"),
        pytest.param("Siobhan O'Connor approved it.", "Siobhan O'Connor", id="apostrophe"),
        pytest.param("Pierre-Antoine Lefèvre wrote it.", "Pierre-Antoine Lefèvre", id="hyphen"),
        pytest.param("Kim Min-jun tested it.", "Kim Min-jun", id="korean-hyphen"),
        pytest.param("Ludwig van Beethoven composed it.", "Ludwig van Beethoven", id="particle"),
        pytest.param("Written by John M. Chambers in 1998.", "John M. Chambers", id="initial"),
        pytest.param("Contact Jean DUPONT about the invoice.", "Jean DUPONT", id="caps-surname"),
        pytest.param("Angus McDonald signed.", "Angus McDonald", id="mc-prefix"),
        pytest.param("Zeynep Yılmaz's laptop broke.", "Zeynep Yılmaz's", id="possessive"),
        pytest.param("(Maria Schmidt) maintains the mirror.", "Maria Schmidt", id="brackets"),
        pytest.param("Maria Morales filed it.", "Maria Morales", id="plural-like-surname"),
        pytest.param("Then Sterling Powers joined.", "Sterling Powers", id="ing-given-name"),
    ],
)
def test_person_names_are_kept(text: str, value: str) -> None:
    assert _kept(text, value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("Run git-mailinfo(1) first.", "git-mailinfo(1", id="symbols-digits"),
        pytest.param(
            "Set add.interactive.useBuiltin to true.", "add.interactive.useBuiltin", id="dots"
        ),
        pytest.param("Then run git config to set it.", "git config", id="lowercase"),
        pytest.param("The GitHub Actions runner.", "GitHub Actions", id="camel-case"),
        pytest.param("The DESCRIPTION section.", "DESCRIPTION", id="all-caps"),
        pytest.param("Use GIT_DIR here.", "GIT_DIR", id="identifier"),
        pytest.param("Pass -A to add all.", "-A", id="option"),
        pytest.param("Written in C++ mostly.", "C++", id="language"),
        pytest.param("Set `Maria Schmidt` as the author.", "Maria Schmidt", id="backticks"),
        pytest.param("Open foo_Maria Schmidt.txt now.", "Maria Schmidt", id="glued"),
        pytest.param("Octave can plot it.", "Octave", id="single-word"),
        pytest.param(
            "Stash Changes: stash the changes first.", "Stash Changes", id="lowercase-elsewhere"
        ),
        pytest.param("They wrote the Java Interface.", "Java Interface", id="determiner"),
        pytest.param("For the markers, see Line Styles.", "Line Styles", id="cross-reference"),
        pytest.param("It needs the Java SDK installed.", "Java SDK", id="acronym"),
        pytest.param("Start with Appendix A. It helps.", "Appendix A.", id="trailing-initial"),
        pytest.param("Running Git commands is easy.", "Running Git", id="gerund"),
        pytest.param("Getting Started", "Getting Started", id="participle"),
    ],
)
def test_person_false_positives_are_dropped(text: str, value: str) -> None:
    assert not _kept(text, value)


def test_single_word_names_need_a_title_a_role_or_the_full_name() -> None:
    assert _kept("Dr. Smith said so.", "Smith")
    assert _kept("Our colleague Priya will join.", "Priya")
    text = "Maria Schmidt wrote the patch. Later Maria tested it."
    maria = Finding("PERSON", text.index("Maria", 5), text.index("Maria", 5) + 5, 0.85)
    full = Finding("PERSON", 0, 13, 0.85)
    assert refine_findings(text, [full, maria]) == [full, maria]
    assert refine_findings(text, [maria]) == []  # no full name given: just a word


def test_person_spans_lose_the_closed_class_word_that_opens_a_sentence() -> None:
    text = "The fix is in. Yesterday Sarah Connor signed it."
    start = text.index("Yesterday")
    found = refine_findings(
        text, [Finding("PERSON", start, start + len("Yesterday Sarah Connor"), 0.85)]
    )
    assert [text[f.start : f.end] for f in found] == ["Sarah Connor"]


@pytest.mark.parametrize(
    ("text", "span", "kept"),
    [
        pytest.param("Call Jane Smith on Monday.", "Call Jane Smith", "Jane Smith", id="name"),
        pytest.param(
            "Done. Email Kwame Mensah now.", "Email Kwame Mensah", "Kwame Mensah", id="2nd"
        ),
        pytest.param("Convert Rd Format to PDF.", "Convert Rd Format", None, id="instruction"),
        pytest.param("Use Courier New for code.", "Use Courier New", None, id="font"),
    ],
)
def test_a_verb_that_opens_the_sentence_is_trimmed_off_a_name(
    text: str, span: str, kept: str | None
) -> None:
    start = text.index(span)
    found = refine_findings(text, [Finding("PERSON", start, start + len(span), 0.85)])
    assert [text[f.start : f.end] for f in found] == ([kept] if kept else [])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param(
            "Ask Declan Hughes whether the mirror is up to date.", "Declan Hughes", id="ask"
        ),
        pytest.param("This section was reviewed by Ama Boateng.", "Ama Boateng", id="verb-by"),
        pytest.param("Thanks to Anneliese Becker for the fix.", "Anneliese Becker", id="thanks-to"),
        pytest.param("Alejandro Morales reported the bug.", "Alejandro Morales", id="speech-after"),
        pytest.param(
            "Tell Sophie Girard (sophie.girard@orange.fr) first.",
            "Sophie Girard",
            id="email-after",
        ),
        pytest.param("The maintainer, Emre Yılmaz, moved.", "Emre Yılmaz", id="role-comma"),
    ],
)
def test_person_cues_find_names_the_ner_misses(
    screener: PiiScreener, text: str, value: str
) -> None:
    assert ("PERSON", value) in _found(screener, text)


@pytest.mark.parametrize(
    "text",
    [
        "Thanks to Git LFS for this.",
        "Ask Git to show the log.",
        "This was reviewed by the Technical Committee of the project.",
    ],
)
def test_person_cues_do_not_make_products_people(screener: PiiScreener, text: str) -> None:
    assert not any(entity == "PERSON" for entity, _ in _found(screener, text))


def test_the_lexicon_comes_from_the_spacy_model() -> None:
    lexicon = english_lexicon()
    assert lexicon is not None
    assert lexicon.inflected("running", "verb") and lexicon.inflected("simplified", "verb")
    assert not lexicon.inflected("sterling", "verb") and not lexicon.inflected("smith", "noun")


@pytest.mark.parametrize(
    ("word", "level"),
    [
        ("oluwaseun", 0),  # not English: most given names and family names
        ("jupyter", 0),
        ("john", 1),  # the lexicon's nouns hold names too
        ("schmidt", 1),
        ("linux", 1),
        ("handle", 2),  # a noun and a verb
        ("grand", 2),  # a noun and an adjective
        ("elements", 2),  # a noun and a plural
        ("sparse", 3),  # an adjective and no noun
        ("tell", 2),
        ("notebooks", 3),  # plurals
        ("matrices", 3),
        ("dispatching", 3),
        ("largest", 3),  # a superlative; comparatives are not: "oliver", "fuller"
        ("oliver", 1),
        ("li", 1),  # a Roman numeral is an adjective: short words count at most as nouns
        ("carmen", 0),  # not "carman" + "-men"
    ],
)
def test_the_lexicon_grades_how_plainly_a_word_is_english(word: str, level: int) -> None:
    lexicon = english_lexicon()
    assert lexicon is not None
    assert lexicon.commonness(word) == level


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # English words, one of them plainly so (an adjective, a plural), and no person cue
        pytest.param(
            "The algorithm comes from Matrix Computations, 2nd edition.",
            "Matrix Computations",
            id="plural-head",
        ),
        pytest.param("Courier New and Arial ship with it.", "Courier New", id="adjective"),
        pytest.param("Sparse Matrices are stored by column.", "Sparse Matrices", id="everyday"),
        pytest.param(
            "Threading is controlled by Grand Central Dispatch here.",
            "Grand Central Dispatch",
            id="everyday-after-by",
        ),
        pytest.param(
            "As in the chapter on Sparse Matrices, the values are stored once.",
            "Sparse Matrices",
            id="no-apposition",
        ),
        pytest.param(
            "Reference: Golub, Matrix Computations (3rd Ed.), Section 5.",
            "Matrix Computations",
            id="bracket-is-no-phone",
        ),
        # a title line with a plainly English word
        pytest.param("## Jupyter Notebooks", "Jupyter Notebooks", id="heading"),
        pytest.param("### 30.2 Voronoi Diagrams", "Voronoi Diagrams", id="numbered-heading"),
        pytest.param("Java Virtual Machine.", "Java Virtual Machine", id="title-line"),
        # a menu path
        pytest.param(
            "Open Edit..Preferences..Advanced..Config Editor and search.",
            "Config Editor",
            id="menu-path",
        ),
        pytest.param("Pick File > Save Copy to keep it.", "Save Copy", id="menu-path-after"),
        # a word of the text's code
        pytest.param(
            "Install `black[jupyter]` to format Jupyter Notebook files.",
            "Jupyter Notebook",
            id="code-word",
        ),
        pytest.param(
            "Set nb_jupyter to format Jupyter Notebook files.",
            "Jupyter Notebook",
            id="identifier-word",
        ),
        # an imperative opening a sentence
        pytest.param("Convert Rd format to PDF.", "Convert Rd", id="imperative"),
        pytest.param("Done. Tell Git that the file changed.", "Tell Git", id="imperative-2"),
    ],
)
def test_names_of_things_are_dropped(text: str, value: str) -> None:
    assert not _kept(text, value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("Reviewed by Grace Law.", "Grace Law", id="noun-verb-given-name"),
        pytest.param("Bill Smith wrote the patch.", "Bill Smith", id="verb-given-name"),
        pytest.param(
            "In our team, Julian Doe usually runs it.", "Julian Doe", id="singular-subject"
        ),
        pytest.param("Mark Powers maintains the mirror.", "Mark Powers", id="everyday-subject"),
        pytest.param(
            "John M. Chambers (1998) Programming with Data.",
            "John M. Chambers",
            id="middle-initial",
        ),
        pytest.param("## Maria Schmidt", "Maria Schmidt", id="heading-of-a-name"),
        pytest.param("Ask Sterling Powers about it.", "Sterling Powers", id="cued-everyday"),
        pytest.param(
            "Thanks to Luis García (`luis` on the forum).", "Luis García", id="cued-code-word"
        ),
        pytest.param("Written by Chen Wei (see `chen-wei.txt`).", "Chen Wei", id="cue-by"),
        pytest.param(
            "Please forward it to maria.schmidt@gmail.com, Maria Schmidt.",
            "Maria Schmidt",
            id="e-mail-is-no-code",
        ),
        pytest.param("See /home/maria for Maria Schmidt's files.", "Maria Schmidt's", id="path"),
        pytest.param(
            "Mark Ruiz added a check-mark to the list.", "Mark Ruiz", id="hyphen-is-prose"
        ),
    ],
)
def test_names_of_people_are_kept(text: str, value: str) -> None:
    assert _kept(text, value)


def test_naming_participles_count_only_right_before_the_name() -> None:
    assert _kept("A user called Priya asked.", "Priya")
    assert not _kept("The routines called by Octave fail.", "Octave")
    assert not _kept("It can be called within Octave as well.", "Octave")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param(
            "Emre Yılmaz, our release manager, signs the tags.", "Emre Yılmaz", id="apposition"
        ),
        pytest.param(
            "Kofi Mensah (+44 20 7946 0958) looks after the build server.",
            "Kofi Mensah",
            id="phone-after",
        ),
    ],
)
def test_tightened_cues_still_find_people(screener: PiiScreener, text: str, value: str) -> None:
    assert ("PERSON", value) in _found(screener, text)


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        pytest.param(
            "My driver license number is A1234567.", "US_DRIVER_LICENSE", "A1234567", id="dl"
        ),
        pytest.param("Her NHS number is 9434765919.", "UK_NHS", "9434765919", id="nhs-bare"),
        pytest.param("Her NHS number is 943 476 5919.", "UK_NHS", "943 476 5919", id="nhs"),
        pytest.param(
            "The server at 192.168.10.24 was patched.", "IP_ADDRESS", "192.168.10.24", id="ip"
        ),
        pytest.param(
            "Login from 81.2.69.160:51234 failed.", "IP_ADDRESS", "81.2.69.160", id="ip-port"
        ),
        pytest.param("Phone: +44 20 7946 0958", "PHONE_NUMBER", "+44 20 7946 0958", id="phone"),
        pytest.param(
            "IBAN BE45 1148 9364 3900 today", "IBAN_CODE", "BE45 1148 9364 3900", id="iban"
        ),
    ],
)
def test_numbers_are_kept(screener: PiiScreener, text: str, entity: str, value: str) -> None:
    assert (entity, value) in _found(screener, text)


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        pytest.param(
            "See the notes for v2.2.1 and later.", "US_DRIVER_LICENSE", "v2", id="version"
        ),
        pytest.param(
            "Released under a public license, the M1 chip is fast.",
            "US_DRIVER_LICENSE",
            "M1",
            id="licence-word-in-public",
        ),
        pytest.param("The job took 9434765919 ms.", "UK_NHS", "9434765919", id="nhs-no-context"),
        pytest.param(
            "Bound to the local IP (127.0.0.1).", "IP_ADDRESS", "127.0.0.1", id="loopback"
        ),
        pytest.param("Try 192.0.2.10 in examples.", "IP_ADDRESS", "192.0.2.10", id="documentation"),
        pytest.param(
            "The mask 255.255.255.0 is common.", "IP_ADDRESS", "255.255.255.0", id="netmask"
        ),
        pytest.param(
            "Git versions prior to 1.5.1.2 fail.", "IP_ADDRESS", "1.5.1.2", id="ip-version"
        ),
        pytest.param("2.7.4.1 LTO with GCC", "IP_ADDRESS", "2.7.4.1", id="section-number"),
        pytest.param("13 2.7.4.2 LTO with LLVM", "IP_ADDRESS", "2.7.4.2", id="contents-line"),
        pytest.param("Hash a1.2.3.4b here", "IP_ADDRESS", "1.2.3.4", id="ip-glued"),
        pytest.param("Call id 020-7946-0321-x9", "PHONE_NUMBER", "020-7946-0321", id="phone-glued"),
        pytest.param(
            "Bank account for build 12345678", "US_BANK_NUMBER", "12345678", id="bank-version"
        ),
    ],
)
def test_number_false_positives_are_dropped(text: str, entity: str, value: str) -> None:
    assert not _kept(text, value, entity)


def test_phone_numbers_are_scored_by_how_they_are_written(screener: PiiScreener) -> None:
    def score(raw: str, region: str) -> float:
        return phone_score(raw, phonenumbers.parse(raw, region))

    assert score("+44 20 7946 0958", "GB") == INTERNATIONAL_PHONE_SCORE
    assert score("0049 30 1234567", "DE") == INTERNATIONAL_PHONE_SCORE
    assert score("020 7946 0321", "GB") == NATIONAL_FORMAT_PHONE_SCORE
    assert score("(212) 555-0147", "US") == NATIONAL_FORMAT_PHONE_SCORE
    assert score("02079460321", "GB") == 0.4  # a bare run of digits needs a context word
    # Without any context word:
    assert ("PHONE_NUMBER", "+49 30 1234567") in _found(screener, "Maria, +49 30 1234567, knows.")
    assert ("PHONE_NUMBER", "020 7946 0321") in _found(screener, "It is 020 7946 0321 now.")
    assert not _found(screener, "It is 02079460321 now.")


# --- e-mail ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("jane.doe@example.com", True),
        ("maria.schmidt@gmail.com", True),
        ("hr@example.com", True),
        ("support@acme-corp.com", False),  # a role, not a person
        ("noreply@acme-corp.com", False),
        ("r-help@r-project.org", False),  # a mailing list
        ("user1@example.com", False),  # a placeholder at a documentation domain
        ("author@example.com", False),
        ("you@yourdomain.example.com", False),
        ("author@gmail.com", True),  # a real domain: could be anyone
    ],
)
def test_email_roles_and_placeholders(value: str, kept: bool) -> None:
    assert _kept(f"Write to {value} today.", value, "EMAIL_ADDRESS") is kept


def test_email_addresses_inside_urls_are_dropped() -> None:
    text = "See https://lore.kernel.org/git/20200207132152.GC2868@szeder.dev/ for it."
    value = "lore.kernel.org/git/20200207132152.GC2868@szeder.dev"
    assert not _kept(text, value, "EMAIL_ADDRESS")
    assert not _kept(text, value[len("lore.kernel.org/git/") :], "EMAIL_ADDRESS")
    assert _kept("Mail <mailto:jane.doe@gmail.com> now.", "jane.doe@gmail.com", "EMAIL_ADDRESS")


# --- street addresses -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "221B Baker Street, London NW1 6XE",
        "1600 Pennsylvania Avenue NW, Washington, DC 20500",
        "350 Bay Street, Toronto, ON M5H 2S6",
        "42 Wallaby Way, Sydney NSW 2000",
        "Hauptstraße 12, 10115 Berlin",
        "Karl-Marx-Straße 12, 10243 Berlin",
        "Frankfurter Allee 5, 10247 Berlin",
        "Keizersgracht 123, 1015 CJ Amsterdam",
        "12 rue de la Paix, 75002 Paris",
        "Calle de Alcalá 260, 28014 Madrid",
        "Via Roma 24, 00184 Roma",
    ],
)
def test_street_addresses_are_found(screener: PiiScreener, address: str) -> None:
    assert ("STREET_ADDRESS", address) in _found(screener, f"Invoices go to {address}.")


def test_a_street_without_town_needs_an_address_word(screener: PiiScreener) -> None:
    assert ("STREET_ADDRESS", "12 Baker Street") in _found(screener, "Send it to 12 Baker Street.")
    for text in (
        "It shipped with a 2 Hard Drive.",
        "Spring 2019 was busy.",
        "Call String 5 twice.",
        "Version 2 Main Street",
    ):
        assert not any(e == "STREET_ADDRESS" for e, _ in _found(screener, text)), text


# --- allow-list and entities ----------------------------------------------------------------

PII_SENTENCE = "Contact Sarah Connor at sarah.connor@example.com or phone +44 20 7946 0958."


def test_allow_terms_are_never_reported() -> None:
    allowing = PiiScreener(allow_terms=["sarah CONNOR", "+44 20 7946 0958"])
    assert allowing.allow_terms == ("sarah CONNOR", "+44 20 7946 0958")
    assert _found(allowing, PII_SENTENCE) == {("EMAIL_ADDRESS", "sarah.connor@example.com")}
    # Other screeners are unaffected; the analyzer is shared.
    assert ("PERSON", "Sarah Connor") in _found(PiiScreener(), PII_SENTENCE)
    assert allowing._analyzer is PiiScreener()._analyzer


@pytest.mark.parametrize(
    ("terms", "value", "kept"),
    [
        (["Acme Cloud Platform"], "Acme Cloud", False),  # inside an occurrence of the term
        (["Maria"], "Maria Schmidt", True),  # the term covers only part of the finding
        (["Ann"], "Anna Smith", True),  # whole words only
        (["Sarah  Connor"], "Sarah Connor's", False),  # whitespace and possessive aside
        (["sarah connor"], "SARAH CONNOR", False),  # case-insensitive
    ],
)
def test_allow_list_matches_whole_terms_covering_the_finding(
    terms: list[str], value: str, kept: bool
) -> None:
    text = "The Acme Cloud Platform team: Maria Schmidt, Anna Smith, Sarah Connor's, SARAH CONNOR."
    start = text.index(value)
    finding = Finding("PERSON", start, start + len(value), 0.85)
    assert (AllowList(terms).filter(text, [finding]) == [finding]) is kept


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Acme", "list of strings"),
        ([""], r"allow_terms\[0\] must be a non-empty string"),
        (["ok", 3], r"allow_terms\[1\] must be a non-empty string"),
        (["x" * 201], "at most 200"),
    ],
)
def test_allow_terms_are_validated(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_allow_terms(value, "allow_terms")
    with pytest.raises(ValueError, match=message if value != "Acme" else "not a string"):
        PiiScreener(allow_terms=value)  # type: ignore[arg-type]


def test_entities_choose_what_is_screened() -> None:
    text = "Contact Sarah Connor at 221B Baker Street, London NW1 6XE or sarah@gmail.com."
    only = PiiScreener(entities=["STREET_ADDRESS", "EMAIL_ADDRESS"])
    assert {e for e, _ in _found(only, text)} == {"STREET_ADDRESS", "EMAIL_ADDRESS"}
    assert "STREET_ADDRESS" in DEFAULT_ENTITIES
    with pytest.raises(ValueError, match="at least one"):
        PiiScreener(entities=[])
    with pytest.raises(ValueError, match="not a string"):
        PiiScreener(entities="PERSON")  # type: ignore[arg-type]


def test_builtin_entities_are_what_the_screener_supports(screener: PiiScreener) -> None:
    assert set(screener._analyzer.get_supported_entities("en")) == BUILTIN_ENTITIES
    assert validate_entities(None) is None
    assert validate_entities(["PERSON", "PERSON", "IBAN_CODE"]) == ("PERSON", "IBAN_CODE")
    employee = CustomRecognizer("badge", "EMPLOYEE_ID", r"EMP-\d{6}")
    assert validate_entities(["EMPLOYEE_ID"], [employee]) == ("EMPLOYEE_ID",)
    with pytest.raises(ValueError, match="unknown entity type 'SHOE_SIZE'"):
        validate_entities(["SHOE_SIZE"])
    with pytest.raises(ValueError, match="is empty"):
        validate_entities([])


def test_screen_texts_takes_the_configuration_instead_of_a_screener() -> None:
    texts = ["Yesterday Sarah Connor signed.\n\nMail sarah.connor@gmail.com today."]
    default = screen_texts(texts, "redact")
    assert "<PERSON>" in default[0].text and "<EMAIL_ADDRESS>" in default[0].text
    allowed = screen_texts(texts, "redact", allow_terms=["Sarah Connor"], entities=["PERSON"])
    assert allowed[0].text == texts[0] and allowed[0].status == "clean"
    with pytest.raises(ValueError, match="not both"):
        screen_texts(texts, "redact", PiiScreener(), allow_terms=["x"])


# --- screening_config ---------------------------------------------------------------------------


def test_screening_config_reads_and_versions_the_new_settings() -> None:
    plain = screening_config({})
    assert isinstance(plain, ScreeningConfig)
    assert (plain.policy, plain.custom) == ("redact", ())
    assert plain.allow_terms == () and plain.entities is None
    config = screening_config(
        {
            "pii_allow_terms": ["Acme Cloud", "Linus Torvalds"],
            "pii_entities": ["PERSON", "EMPLOYEE_ID"],
            "pii_recognizers": [
                {"name": "badge", "entity_type": "EMPLOYEE_ID", "pattern": r"EMP-\d{6}"}
            ],
        }
    )
    assert config.allow_terms == ("Acme Cloud", "Linus Torvalds")
    assert config.entities == ("PERSON", "EMPLOYEE_ID")
    screener = config.screener()
    assert screener.allow_terms == config.allow_terms
    assert screener.entities == ("PERSON", "EMPLOYEE_ID")
    assert config.screener() is screener
    # The version follows the settings, not their order or case.
    reordered = screening_config(
        {
            "pii_allow_terms": ["linus torvalds", "acme cloud"],
            "pii_entities": ["EMPLOYEE_ID", "PERSON"],
            "pii_recognizers": [
                {"name": "badge", "entity_type": "EMPLOYEE_ID", "pattern": r"EMP-\d{6}"}
            ],
        }
    )
    assert reordered.version == config.version != plain.version
    assert screening_config({"pii_allow_terms": ["Acme"]}).version != plain.version
    assert screening_config({"pii_entities": ["PERSON"]}).version != plain.version


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"pii_allow_terms": "Acme"}, "pii_allow_terms must be a list of strings"),
        ({"pii_allow_terms": ["Acme", ""]}, r"pii_allow_terms\[1\]"),
        ({"pii_entities": "PERSON"}, "pii_entities must be a list"),
        ({"pii_entities": []}, "pii_entities is empty"),
        ({"pii_entities": ["person"]}, r"pii_entities\[0\] is not an entity type"),
        ({"pii_entities": ["SHOE_SIZE"]}, "unknown entity type 'SHOE_SIZE'"),
    ],
)
def test_screening_config_rejects_bad_settings(settings: dict, message: str) -> None:
    with pytest.raises(StageFailure, match=message) as raised:
        screening_config(settings, "examples")
    failure = raised.value
    assert (failure.stage, failure.code) == ("examples", "invalid_setting")
    assert failure.details["setting"] == next(iter(settings))
    assert "PATCH /v1/projects/" in failure.action


# --- the worker protocol ------------------------------------------------------------------------


def test_worker_protocol_carries_allow_terms_and_entities() -> None:
    from assets.pii.worker import serve

    texts = ["Yesterday Sarah Connor signed.\n\nMail sarah.connor@gmail.com today."]
    requests = [
        {"texts": texts, "policy": "redact", "custom": []},  # as older callers send
        {
            "texts": texts,
            "policy": "redact",
            "custom": [],
            "allow_terms": ["Sarah Connor"],
            "entities": ["PERSON", "EMAIL_ADDRESS"],
        },
        {"texts": texts, "policy": "redact", "custom": [], "entities": ["SHOE_SIZE"]},
    ]
    stdout = io.StringIO()
    serve(io.StringIO("".join(json.dumps(r) + "\n" for r in requests)), stdout)
    old, new, bad = (json.loads(line) for line in stdout.getvalue().splitlines())
    expected_old = screen_texts(texts, "redact")[0]
    assert old["results"] == [[expected_old.text, expected_old.status, expected_old.summary]]
    text, status, summary = new["results"][0]
    assert "Sarah Connor" in text and "<EMAIL_ADDRESS>" in text
    assert (status, summary) == ("redacted", {"EMAIL_ADDRESS": 1})
    assert "SHOE_SIZE" in bad["error"]


# --- masked snippets ----------------------------------------------------------------------------


def test_mask_keeps_only_first_letters() -> None:
    assert mask("Jane Smith") == "J*** S****"
    assert mask("jane.doe@example.com") == "j***.d**@e******.c**"
    assert mask("+44 20 7946 0958") == "+** ** **** ****"
    assert mask("O'Connor-Smith") == "O'C*****-S****"


def test_masked_snippet_shows_context_and_hides_every_finding() -> None:
    text = (
        "Payroll questions:\n\nplease contact Jane Smith at jane.smith@gmail.com or on "
        "+44 20 7946 0958 before the end of the month."
    )
    person = Finding("PERSON", text.index("Jane"), text.index("Jane") + 10, 0.85)
    email_start = text.index("jane.smith")
    email = Finding("EMAIL_ADDRESS", email_start, email_start + 20, 1.0)
    phone_start = text.index("+44")
    phone = Finding("PHONE_NUMBER", phone_start, phone_start + 16, 0.95)
    snippets = masked_snippets(text, [person, email, phone])
    assert (
        snippets[0] == "...ll questions: please contact J*** S**** at j***.s****@g****.c** or on..."
    )
    assert snippets[2].startswith("...") and snippets[2].endswith("end of the month.")
    assert "+** ** **** ****" in snippets[2]
    for snippet in snippets:
        for secret in ("Jane", "Smith", "smith", "gmail", "7946", "0958"):
            assert secret not in snippet
    # Alone, the finding is still masked; the text's edges get no "...".
    assert masked_snippet("Jane Smith", Finding("PERSON", 0, 10, 0.85)) == "J*** S****"
    # A finding cut by the window keeps no more than its masked form.
    short = masked_snippet(text, person, [person, email, phone], context=8)
    assert short == "...contact J*** S**** at j***..."


# --- the quality bench's second false-positive figure -------------------------------------------


def test_bench_counts_real_names_apart_from_false_findings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("pii_quality", root / "bench" / "pii_quality.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "pii_quality", bench)  # for its dataclasses
    monkeypatch.setattr(sys, "path", list(sys.path))  # it puts the repository first
    spec.loader.exec_module(bench)
    shipped = bench.TrueNames.load(bench.TRUE_NAMES_FILE)
    assert {"gitdocs", "blackdocs", "octave", "rmanuals"} <= set(shipped.names)
    labels = tmp_path / "names.txt"
    labels.write_text("# comment\n[docs]\nJohn M. Chambers\npage: credits.html\n", encoding="utf-8")
    true_names = bench.TrueNames.load(labels)
    texts = ["Written by John M. Chambers’s team. Jupyter Notebooks are fine.", "Ben Abbott"]

    def span(text: str, value: str) -> tuple[str, int, int]:
        return ("PERSON", text.index(value), text.index(value) + len(value))

    spans = [
        [span(texts[0], "John M. Chambers’s"), span(texts[0], "Jupyter Notebooks")],
        [span(texts[1], "Ben Abbott")],  # on a credits page
    ]
    fp = bench.false_positives(
        texts, ["docs", "docs"], spans, 5, true_names, ["guide.html", "credits.html"]
    )
    assert fp["total"] == 3
    assert fp["excluding_true_names"]["total"] == 1
    assert fp["excluding_true_names"]["top_strings"] == [["PERSON: Jupyter Notebooks", 1]]
    assert not true_names.match("John Chambers", "docs")  # whole names only
    assert not true_names.match("John M. Chambers", "other")  # per corpus
