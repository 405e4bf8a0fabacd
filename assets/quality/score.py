"""Score how fit a document's text is for training: length, letters, repetition, OCR
confidence and language, each a factor in [0, 1] with a sentence saying what was wrong."""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import re
import shutil
import tempfile
import threading
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

from assets.normalization.normalize import word_count
from resources.settings import get_settings

MIN_WORDS = 30
# (bad, good) bounds of each signal: at `good` or better a factor is 1.0, at `bad` or
# worse it is the floor, in between linear. The repetition bounds bracket Gopher's
# filters (Rae et al. 2021: top 2/3/4-gram character share 0.20/0.18/0.16, duplicate
# lines 0.30).
ALPHA_RATIO = (0.3, 0.7)
DUPLICATE_LINE_RATIO = (0.5, 0.1)
TOP_NGRAM_RATIO = (0.5, 0.2)
OCR_CONFIDENCE = (0.4, 0.85)
EXPECTED_LANGUAGE_PROBABILITY = (0.1, 0.5)
_FLOOR = 0.1
_SHORT_FLOOR, _SHORT_CEILING = 0.1, 0.4
_LANGUAGE_FLOOR = 0.3
_NGRAM_SIZES = (2, 3, 4)
# Fewer letters than this, or a best guess less likely than this, and the language is
# undetermined: number tables and source code get best guesses of 10-20%.
_MIN_LETTERS = 20
_MIN_LANGUAGE_PROBABILITY = 0.5
# py3langid walks the text byte by byte in Python; three windows are plenty to tell the
# language and keep a book-length document to milliseconds.
_LANGUAGE_WINDOW = 4000
_UNDETERMINED = "und"
# py3langid's label for text with no linguistic content; letters that are no language
# (a PDF font without a Unicode map, a wrong decoding) land here with confidence.
_NO_LANGUAGE = "zxx"
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class QualityReport:
    """A document's quality score (0 worst, 1 best), one sentence per problem found, the
    measured signals, and its language (given or detected; "und" when unknown)."""

    score: float
    reasons: list[str] = field(default_factory=list)
    signals: dict[str, float] = field(default_factory=dict)
    language: str = _UNDETERMINED


def score_document(
    text: str,
    ocr_confidence: float | None = None,
    language: str | None = None,
    expected_languages: Sequence[str] = ("en",),
) -> QualityReport:
    """Score a document's text; the product of one factor per signal, so a worse signal
    never raises the score.

    `ocr_confidence` is the extractor's mean confidence in [0, 1] for scanned documents.
    `language` skips detection when the caller already knows it. An empty
    `expected_languages` accepts every language; garbled text is never accepted.
    """
    if ocr_confidence is not None and not 0.0 <= ocr_confidence <= 1.0:
        raise ValueError(f"ocr_confidence must be in [0, 1], got {ocr_confidence}")
    if not text.strip():
        return QualityReport(0.0, ["empty text"], {"words": 0.0})

    reasons: list[str] = []
    signals: dict[str, float] = {}
    factors: list[float] = []

    words = word_count(text)
    signals["words"] = float(words)
    if words < MIN_WORDS:
        factors.append(_SHORT_FLOOR + (_SHORT_CEILING - _SHORT_FLOOR) * words / MIN_WORDS)
        reasons.append(f"too short ({words} words, fewer than {MIN_WORDS})")

    alpha = _alpha_ratio(text)
    signals["alpha_ratio"] = round(alpha, 4)
    factors.append(_ramp(alpha, *ALPHA_RATIO))
    if alpha < ALPHA_RATIO[1]:
        wording = "mostly non-alphabetic" if alpha < 0.5 else "many non-alphabetic characters"
        reasons.append(f"{wording} (ratio {alpha:.2f})")

    duplicate_lines = _duplicate_line_ratio(text)
    signals["duplicate_line_ratio"] = round(duplicate_lines, 4)
    if duplicate_lines > DUPLICATE_LINE_RATIO[1]:
        reasons.append(f"repeated lines ({duplicate_lines:.0%} of lines repeat an earlier line)")
    ngram_size, top_ngram = _top_ngram_ratio(text)
    signals["top_ngram_ratio"] = round(top_ngram, 4)
    if top_ngram > TOP_NGRAM_RATIO[1]:
        reasons.append(
            f"repetitive wording (the most repeated {ngram_size}-word phrase covers "
            f"{top_ngram:.0%} of the text)"
        )
    # Repeated lines repeat their n-grams too; one repetition factor avoids counting it twice.
    factors.append(
        min(_ramp(duplicate_lines, *DUPLICATE_LINE_RATIO), _ramp(top_ngram, *TOP_NGRAM_RATIO))
    )

    if ocr_confidence is not None:
        signals["ocr_confidence"] = float(ocr_confidence)
        factors.append(_ramp(ocr_confidence, *OCR_CONFIDENCE))
        if ocr_confidence < OCR_CONFIDENCE[1]:
            reasons.append(f"low OCR confidence ({ocr_confidence:.2f})")

    expected = [_primary_subtag(code) for code in expected_languages]
    if language is not None:
        detected = _primary_subtag(language)
        confidence = None
        expected_probability = 1.0 if _acceptable(detected, expected) else 0.0
    else:
        distribution = _language_distribution(text)
        detected, confidence = distribution[0] if distribution else (_UNDETERMINED, 0.0)
        expected_probability = sum(p for lang, p in distribution if _acceptable(lang, expected))
    if detected != _UNDETERMINED:
        signals["expected_language_probability"] = round(expected_probability, 4)
        factors.append(
            _ramp(expected_probability, *EXPECTED_LANGUAGE_PROBABILITY, floor=_LANGUAGE_FLOOR)
        )
        if expected_probability < EXPECTED_LANGUAGE_PROBABILITY[1]:
            measured = f" ({confidence:.2f})" if confidence is not None else ""
            if detected == _NO_LANGUAGE:
                reasons.append(f"no recognisable language, likely garbled text{measured}")
            else:
                reasons.append(
                    f"language is {detected}{measured}, expected {' or '.join(expected)}"
                )

    score = 1.0
    for factor in factors:
        score *= factor
    if detected == _NO_LANGUAGE:
        detected = _UNDETERMINED
    return QualityReport(round(score, 4), reasons, signals, detected)


def detect_language(text: str) -> tuple[str, float]:
    """The text's language (ISO 639-1 where the language has one, else py3langid's
    ISO 639-3 code) and its probability; ("und", 0.0) when the text has too few letters,
    no linguistic content, or no language reaches a probability of 0.5."""
    distribution = _language_distribution(text)
    if not distribution or distribution[0][0] == _NO_LANGUAGE:
        return _UNDETERMINED, 0.0
    return distribution[0]


def _ramp(value: float, bad: float, good: float, floor: float = _FLOOR) -> float:
    """1.0 at `good` or better, `floor` at `bad` or worse, linear between; `bad` may lie
    on either side of `good`."""
    position = min(max((value - bad) / (good - bad), 0.0), 1.0)
    return floor + (1.0 - floor) * position


def _alpha_ratio(text: str) -> float:
    visible = [ch for ch in text if not ch.isspace()]
    if not visible:
        return 0.0
    return sum(ch.isalpha() for ch in visible) / len(visible)


def _duplicate_line_ratio(text: str) -> float:
    lines = [" ".join(line.casefold().split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return 0.0
    return (len(lines) - len(set(lines))) / len(lines)


def _top_ngram_ratio(text: str) -> tuple[int, float]:
    """The largest share of word characters covered by the occurrences of one repeated
    word n-gram (n = 2, 3, 4), and that n; (0, 0.0) when nothing repeats."""
    words = _WORD.findall(text.casefold())
    total = sum(map(len, words))
    best_size, best = 0, 0.0
    for n in _NGRAM_SIZES:
        counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        covered = max(
            (count * sum(map(len, gram)) for gram, count in counts.items() if count > 1),
            default=0,
        )
        # Overlapping occurrences ("a a a a") can count a character twice.
        ratio = min(covered / total, 1.0) if total else 0.0
        if ratio > best:
            best_size, best = n, ratio
    return best_size, best


def _acceptable(language: str, expected: Sequence[str]) -> bool:
    return language in expected if expected else language != _NO_LANGUAGE


def _primary_subtag(code: str) -> str:
    return re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]


_identifier_lock = threading.Lock()
_identifier_instance: LanguageIdentifier | None = None


def _identifier() -> LanguageIdentifier:
    # A private instance with normalised probabilities; py3langid's module-level one
    # returns log-probabilities and is shared, mutable state. Loaded under a lock: a caller
    # waits for a load in progress (assets/warmup.py starts one in the background) instead
    # of loading the model a second time beside it.
    global _identifier_instance
    with _identifier_lock:
        if _identifier_instance is None:
            _identifier_instance = load_identifier(get_settings().model_cache / "py3langid")
        return _identifier_instance


def load_identifier(cache_dir: Path | None = None) -> LanguageIdentifier:
    """py3langid's model, giving normalised probabilities. The packaged model is LZMA-compressed
    and takes ~0.3 s to decompress, in every process that detects a language; with a
    `cache_dir`, the first process keeps the decompressed arrays there (~70 MB) and later ones
    read them in a fraction of that. Any trouble with the cache falls back to the package."""
    if cache_dir is not None:
        try:
            with np.load(_decompressed_model(cache_dir), allow_pickle=False) as model:
                return LanguageIdentifier(
                    np.asarray(model["ptc"]),
                    np.asarray(model["pc"]),
                    model["classes"].tolist(),
                    _unsigned_array(model["nextmove"]),
                    model["out_feat"].tolist(),
                    norm_probs=True,
                    tk_row=_unsigned_array(model["nextmove_row"]),
                )
        except Exception:  # noqa: BLE001 - unwritable, damaged, another py3langid's layout
            pass
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _decompressed_model(cache_dir: Path) -> Path:
    """The packaged model's npz, decompressed into `cache_dir` once; named by the packaged
    file's digest, so a py3langid upgrade gets a file of its own."""
    packaged = MODEL_DIR / MODEL_FILE
    digest = hashlib.sha256(packaged.read_bytes()).hexdigest()[:16]
    target = cache_dir / f"model-{digest}.npz"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".model-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, lzma.open(packaged) as source:
            shutil.copyfileobj(source, out, 1 << 20)
        os.replace(tmp, target)  # atomic: concurrent processes never read a partial file
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def _unsigned_array(values: np.ndarray) -> array:
    # The stdlib arrays py3langid's own loader gives its tokenizer tables.
    typecode = {2: "H", 4: "I", 8: "L"}[values.dtype.itemsize]
    out = array(typecode)
    out.frombytes(np.ascontiguousarray(values).tobytes())
    return out


def _language_sample(text: str) -> str:
    if len(text) <= 3 * _LANGUAGE_WINDOW:
        return text
    middle = (len(text) - _LANGUAGE_WINDOW) // 2
    return "\n".join(
        (
            text[:_LANGUAGE_WINDOW],
            text[middle : middle + _LANGUAGE_WINDOW],
            text[-_LANGUAGE_WINDOW:],
        )
    )


def _language_distribution(text: str) -> list[tuple[str, float]]:
    """Languages by probability, most likely first, "zxx" (garbled text) among them;
    empty when undetermined."""
    sample = _language_sample(text)
    if sum(ch.isalpha() for ch in sample) < _MIN_LETTERS:
        return []
    ranked = [(lang, float(p)) for lang, p in _identifier().rank(sample)]
    if ranked[0][1] < _MIN_LANGUAGE_PROBABILITY:
        return []
    return ranked
