"""Answer-quality metrics: plain functions over strings."""

from __future__ import annotations

import re
import string
import unicodedata

from rapidfuzz import fuzz

_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lowercase, NFKC, no punctuation or articles, single spaces (SQuAD-style)."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def fuzzy_match(prediction: str, reference: str) -> float:
    """Similarity in [0, 1] of the normalised strings (rapidfuzz's indel ratio)."""
    return fuzz.ratio(normalize_answer(prediction), normalize_answer(reference)) / 100.0


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
